//go:build !livetest

package main

import (
	"context"
	"log/slog"

	"github.com/oxsecurity/oxbroker/agent"
)

// injectFault does nothing: the live test's fault switch exists only in
// binaries built with -tags livetest (fault_livetest.go).
func injectFault(context.Context, *agent.Agent, *slog.Logger) {}
