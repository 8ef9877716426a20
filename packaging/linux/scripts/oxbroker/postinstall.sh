#!/bin/sh
# oxbroker, after its files are in place: deb postinst "configure" ($2 is the
# version upgraded from, empty on a first install), rpm %post ($1 is 1 on
# a first install, 2 or more on an upgrade).
#
# A first install enables the unit, so that the service starts at boot, but
# does not start it: /etc/oxbroker/config.yaml is a commented example until
# the administrator fills it in. An upgrade restarts the service if it was
# running; the package never overwrites a config file that was changed.
#
# DPKG_ROOT: see preinstall.sh.
set -e
root="${DPKG_ROOT:-}"
unit=oxbroker.service

case "$1" in
configure) if [ -z "$2" ]; then action=install; else action=upgrade; fi ;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;; # abort-upgrade, abort-remove...: nothing was changed
esac

# running: systemd manages this machine (not a chroot, container or image build).
running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

if running; then
	systemctl daemon-reload || true
fi
if [ "$action" = install ]; then
	if command -v systemctl >/dev/null 2>&1; then
		systemctl ${root:+--root="$root"} enable "$unit"
	fi
	cat <<'MSG'
oxbroker: the service is enabled but not started, as /etc/oxbroker/config.yaml
is only a commented example. Fill it in (the file says how), then, as root:
  runuser -u oxbroker -- oxbroker check --config /etc/oxbroker/config.yaml
  systemctl start oxbroker
  oxbroker service status
The whole first run: docs/operations.md, section "First run".
MSG
elif running; then
	systemctl try-restart "$unit" || true
fi
