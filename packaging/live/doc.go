// Package live holds the live systemd tests (make live-test): a Debian
// bookworm root file system, debootstrapped once and cached outside the
// repository (scripts/live-rootfs.sh), is booted with systemd-nspawn, and
// the release's .deb packages and the bare binary are installed, started,
// called, reloaded, stopped, upgraded and removed in it as an administrator
// would, under the real hardened units. The container shares the host's
// network, so the gateway and the Jira stand-in the agent talks to run on
// the host's loopback, and the test calls through them from the host.
//
// The tests (Linux only) run only with OXBROKER_LIVE=1 and as root (make live-test sets
// it; .ci/run calls it); elsewhere they skip, saying so.
package live
