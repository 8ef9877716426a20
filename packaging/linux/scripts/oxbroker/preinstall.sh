#!/bin/sh
# oxbroker, before its files are unpacked (deb preinst, rpm %pre): creates the
# system group and user "oxbroker" that the service runs as and that own the
# config's group and /var/lib/oxbroker.
#
# DPKG_ROOT is set when dpkg installs into another root without chroot
# (dpkg --root=DIR --force-script-chrootless, as the package test does):
# every command here then acts on that root, not on this machine.
set -e
root="${DPKG_ROOT:-}"
name=oxbroker

# exists passwd|group NAME: whether the account exists.
exists() {
	if [ -n "$root" ]; then
		grep -q "^$2:" "$root/etc/$1" 2>/dev/null
	else
		getent "$1" "$2" >/dev/null
	fi
}

if ! exists group "$name"; then
	groupadd --system ${root:+--prefix "$root"} "$name"
fi
if ! exists passwd "$name"; then
	useradd --system --gid "$name" --home-dir /var/lib/oxbroker --no-create-home \
		--shell /usr/sbin/nologin --comment "OX Broker agent" ${root:+--prefix "$root"} "$name"
fi
