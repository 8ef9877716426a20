#!/bin/sh
# oxbroker, after its files are removed: deb postrm "remove", "purge",
# "upgrade"..., rpm %postun ($1 is 0 on an erase). A purge (deb only) also
# removes the unit's enablement and /var/lib/oxbroker, the agent's state (its agent id).
# The config is the package manager's: dpkg removes it on purge, rpm keeps
# a changed one as config.yaml.rpmsave. Files the administrator added to
# /etc/oxbroker (tokens, certificates) stay, and so do the user and group
# "oxbroker", which files elsewhere may still belong to.
#
# DPKG_ROOT: see preinstall.sh.
set -e
root="${DPKG_ROOT:-}"
unit=oxbroker.service

if [ "$1" = purge ]; then
	rm -f "$root/etc/systemd/system/multi-user.target.wants/$unit"
	rm -rf "$root/var/lib/oxbroker"
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
