#!/bin/sh
# oxbroker-gateway, before its files are removed: deb prerm "remove" or "upgrade",
# rpm %preun ($1 is 0 on an erase, 1 or more on an upgrade). An erase
# stops the service; an upgrade leaves it running for postinstall to restart.
#
# rpm also disables the unit. dpkg keeps the unit enabled until purge (as
# Debian's own packages do): a package removed but not purged and then
# installed again comes back enabled as it was.
#
# DPKG_ROOT: see preinstall.sh.
set -e
root="${DPKG_ROOT:-}"
unit=oxbroker-gateway.service

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl stop "$unit" || true
fi
if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable "$unit" || true
fi
