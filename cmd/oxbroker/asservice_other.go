//go:build !linux

package main

import (
	"context"
	"errors"
	"os/exec"
)

// asServiceCmd refuses: only the Linux service runs as a user of its own;
// elsewhere it runs as root or LocalSystem, which check already runs as.
func asServiceCmd(context.Context, string, []string) (*exec.Cmd, error) {
	return nil, errors.New("--as-service is for the Linux service, which runs as user oxbroker; here the service runs as root (LocalSystem on Windows): run check as that")
}
