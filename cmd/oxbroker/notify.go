package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/internal/sdnotify"
)

// readyWait bounds how long the agent keeps systemd waiting for its first
// tunnel before it reports started all the same: a gateway that is down
// must not fail the boot, and "systemctl start" should not hang on it.
// It is well below systemd's default TimeoutStartSec (90 s).
const readyWait = 20 * time.Second

// superviseAgent tells systemd, when it runs the agent as a Type=notify
// service, that the agent is ready once a tunnel is up (or after
// readyWait), keeps systemctl status's line on the tunnels' state, and
// pings the watchdog after each a.Status answer. Status takes the lock the
// agent's sessions and reloads take, so an agent stuck on it stops the
// pings and systemd restarts it (WatchdogSec= in the unit). Elsewhere it
// returns at once.
func superviseAgent(ctx context.Context, a *agent.Agent, log *slog.Logger) {
	sdnotify.Supervise(ctx, func() sdnotify.Report {
		st := a.Status()
		return sdnotify.Report{Ready: st.Tunnels > 0, Status: statusLine(st)}
	}, sdnotify.Options{ReadyWait: readyWait, Log: log})
}

// statusLine is systemctl status's "Status:" line for st: the agent's
// Summary, which `oxbroker service status` prints too.
func statusLine(st agent.Status) string { return st.Summary() }
