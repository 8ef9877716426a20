package agent

import (
	"log/slog"
	"net"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// limitControl labels a session closed for a bad control frame, beside
// the tunnel's limits (tunnel.LimitPings, ...).
const limitControl = "control"

// overLimit counts a session closed because the gateway went over a limit
// and logs it within the budget of the limit: a gateway that does it on
// every session gets a line per 10 s with the count, not one per session.
func (a *Agent) overLimit(log *slog.Logger, limit, msg string, args ...any) {
	a.metrics.limits.WithLabelValues(limit).Inc()
	a.lines.Log(log, slog.LevelWarn, limit, msg, append(args, "limit", limit)...)
}

// withLimitHook returns o with OnLimit counting and logging the tunnel's
// limits on a, then calling the caller's own hook, if any.
func (a *Agent) withLimitHook(o tunnel.Options) tunnel.Options {
	prev := o.OnLimit
	o.OnLimit = func(limit string, remote net.Addr) {
		a.overLimit(a.log, limit, "the gateway went over a limit of the tunnel; session closed", "gateway", remote.String())
		if prev != nil {
			prev(limit, remote)
		}
	}
	return o
}
