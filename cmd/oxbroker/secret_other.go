//go:build !windows

package main

// secrets is empty off Windows: systemd credentials do its job on Linux.
var secrets = secretStore{}
