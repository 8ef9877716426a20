//go:build livetest

package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/oxsecurity/oxbroker/agent"
)

// faultEnv turns the live test's fault on in a binary built with -tags
// livetest. A release is built without the tag, so neither the variable
// nor the fault is in it (packaging's TestLinuxBinaries checks).
const faultEnv = "OXBROKER_LIVETEST_FAULT"

// hangAfter is how long the agent runs ready before it hangs: several
// of the supervision loop's probes, so that READY=1 went out.
const hangAfter = 5 * time.Second

// injectFault, with OXBROKER_LIVETEST_FAULT=hang, waits for the first
// tunnel, gives the service time to report READY=1, and then hangs the
// agent (agent.HangForLiveTest), so that the live test can show systemd's
// watchdog restarting a service that was running.
func injectFault(ctx context.Context, a *agent.Agent, log *slog.Logger) {
	if os.Getenv(faultEnv) != "hang" {
		return
	}
	go func() {
		for !a.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(hangAfter):
		}
		log.Warn("livetest fault: hanging the agent on purpose")
		agent.HangForLiveTest(a)
	}()
}
