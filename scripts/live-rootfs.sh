#!/usr/bin/env bash
# live-rootfs.sh prints the path of a Debian bookworm root file system that
# systemd-nspawn can boot, for the live systemd tests (make live-test). It is
# debootstrapped once from this machine's Debian mirror and cached outside
# the repository, keyed by what goes into it: a warm run only prints the path.
#
#   OXBROKER_LIVE_CACHE   cache folder (default ~/.cache/oxbroker-live)
#   OXBROKER_LIVE_MIRROR  Debian mirror (default: the first of this machine's apt sources)
set -euo pipefail
suite=bookworm
include=systemd,dbus,ca-certificates
cache="${OXBROKER_LIVE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/oxbroker-live}"

mirror="${OXBROKER_LIVE_MIRROR:-}"
if [ -z "$mirror" ]; then
	# deb822 (URIs: ...) or one-line (deb URI suite ...) sources.
	mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
	[ -n "$mirror" ] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

key=$(printf '%s\n' "$suite" "$include" "minbase" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)
root="$cache/$suite-$key"
if [ -f "$root/.oxbroker-live-complete" ]; then
	echo "$root"
	exit 0
fi
mkdir -p "$cache"
tmp="$root.tmp"
rm -rf "$tmp"
echo "live-rootfs: debootstrap $suite ($include) from $mirror into $root; this takes a few minutes once" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >&2
# A machine id and no console login: the tests talk to the container
# through nsenter, and a getty would wait for a terminal forever.
rm -f "$tmp/etc/machine-id" && touch "$tmp/etc/machine-id"
rm -f "$tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
touch "$tmp/.oxbroker-live-complete"
rm -rf "$root"
mv "$tmp" "$root"
echo "$root"
