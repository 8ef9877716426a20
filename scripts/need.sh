#!/usr/bin/env bash
# need.sh CMD:PACKAGE ... installs the Debian packages of the commands this
# machine lacks, so that `make test` and `.ci/run` work on a fresh machine.
# Needs root (or sudo) and apt only when something is missing.
set -euo pipefail
missing=()
for pair in "$@"; do
	command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} (Debian packages)"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
# Another apt may hold the lock (a parallel job): wait for it rather than fail.
lock=(-o DPkg::Lock::Timeout=600)
$sudo apt-get "${lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
