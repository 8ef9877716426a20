package gateway

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/lograte"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Limits of the gateway's own (the limits: config), as metric labels
// beside the tunnel's (tunnel.LimitPings, ...).
const (
	limitUnauthenticated = "unauthenticated" // limits.unauthenticated_sessions
	limitBrokerSessions  = "broker_sessions" // limits.sessions_per_broker
	limitBrokerSites     = "broker_sites"    // limits.sites_per_broker
	limitControl         = "control"         // a bad control frame (tunnel.ErrProtocol)
)

// Log lines that agents, or strangers, can drive (a reconnect loop, a
// flood of sites messages, a flood of connections over a limit) go
// through one lograte.Limiter: per key, linesBurst lines, then one per
// logEvery that counts the ones held back. Keys are a broker id and an
// event, or a limit; linesKeys bounds them.
const (
	linesBurst = 10
	linesKeys  = 4096
)

// logEvery is the interval of rate-limited log lines: one per key then.
const logEvery = 10 * time.Second

func newLines() *lograte.Limiter { return lograte.New(linesBurst, logEvery, linesKeys) }

// newRareLines is for warnings that need one line per 10 s at most (an
// address over its failure budget, refused internal requests).
func newRareLines() *lograte.Limiter { return lograte.New(1, logEvery, 8) }

// logLimited logs one line about broker's sessions (key: broker and
// event), within the lines' budget.
func (g *Gateway) logLimited(log *slog.Logger, level slog.Level, broker, event, msg string, args ...any) {
	g.lines.Log(log, level, broker+"|"+event, msg, args...)
}

// overLimit counts a session that went over a limit and logs it within
// the budget of the limit (and of the broker, when there is one).
func (g *Gateway) overLimit(log *slog.Logger, limit, broker, msg string, args ...any) {
	g.metrics.limits.WithLabelValues(limit).Inc()
	g.logLimited(log, slog.LevelWarn, broker, "limit:"+limit, msg, append(args, "limit", limit)...)
}

// onTunnelLimit is the tunnel's OnLimit: a peer went over a limit of
// tunnel/spec.md and its session or connection was closed.
func (g *Gateway) onTunnelLimit(limit string, remote net.Addr) {
	g.overLimit(g.log, limit, "", "tunnel peer went over a limit; closed", "remote", addrString(remote))
}

// withLimitHook returns o with OnLimit counting and logging on g, then
// calling the caller's own hook, if any.
func (g *Gateway) withLimitHook(o tunnel.Options) tunnel.Options {
	prev := o.OnLimit
	o.OnLimit = func(limit string, remote net.Addr) {
		g.onTunnelLimit(limit, remote)
		if prev != nil {
			prev(limit, remote)
		}
	}
	return o
}

// brokerCount counts the live sessions of each broker on this process.
type brokerCount struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

// acquire counts one more session of broker unless it has limit already.
func (c *brokerCount) acquire(broker string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[broker] >= limit {
		return false
	}
	c.n[broker]++
	return true
}

func (c *brokerCount) release(broker string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[broker]--; c.n[broker] <= 0 {
		delete(c.n, broker)
	}
}

// checkSites judges the sites of a hello or sites message: over
// limits.sites_per_broker the list is refused whole (ok false); else the
// entries with invalid names are dropped, with one line for them all.
func (g *Gateway) checkSites(in []tunnel.SiteInfo, broker string, log *slog.Logger) (sites []tunnel.SiteInfo, ok bool) {
	if limit := g.cfg.Limits.Sites(); len(in) > limit {
		g.overLimit(log, limitBrokerSites, broker, "agent announced more sites than limits.sites_per_broker; refused whole",
			"sites", len(in), "max", limit)
		return nil, false
	}
	out := make([]tunnel.SiteInfo, 0, len(in))
	invalid, example := 0, ""
	for _, si := range in {
		if !brokerhttp.ValidName(si.Name) {
			if invalid == 0 {
				example = clip.String(si.Name, 64)
			}
			invalid++
			continue
		}
		out = append(out, si)
	}
	if invalid > 0 {
		g.logLimited(log, slog.LevelWarn, broker, "invalid-sites", "agent announced sites with invalid names; ignored",
			"invalid", invalid, "example", example)
	}
	return out, true
}
