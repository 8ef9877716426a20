//go:build !windows

package main

import (
	"context"
	"errors"
	"io"
	"os"
)

const privilegeHint = "needs root: run it with sudo"

func checkPrivileged() error {
	if os.Geteuid() != 0 {
		return errors.New(privilegeHint)
	}
	return nil
}

// runManaged runs the agent. systemd and launchd stop a service with
// SIGTERM, which already cancels ctx, so there is nothing to fail here.
func runManaged(ctx context.Context, run func(context.Context)) error {
	run(ctx)
	return nil
}

// logOutput is where "oxbroker run" writes: stderr, which systemd sends
// to the journal and launchd to /var/log/oxbroker.err.log.
func logOutput(stderr io.Writer) io.Writer { return stderr }
