package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// release gives back the local session's in-flight slot.
func (rt *routed) release() {
	if rt.session != nil && !rt.released {
		rt.released = true
		rt.session.inflight.Add(-1)
	}
}

// logAttrs names the route in the request's log line.
func (rt *routed) logAttrs() []any {
	attrs := rt.appendLogAttrs(nil)
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}

// appendLogAttrs appends the route's attributes to dst.
func (rt *routed) appendLogAttrs(dst []slog.Attr) []slog.Attr {
	switch {
	case rt == nil:
		return append(dst, slog.String("session", ""))
	case rt.remote != nil:
		return append(dst, slog.String("session", rt.remote.Session), slog.String("forwarded_to", rt.remote.Advertise))
	case rt.session != nil:
		return append(dst, slog.String("session", rt.session.id))
	}
	return append(dst, slog.String("session", ""))
}

// routeError is a call that found no route; it becomes a broker error.
type routeError struct {
	code brokerhttp.Code
	msg  string
}

func (e *routeError) Error() string { return string(e.code) + ": " + e.msg }

// locate finds where a call goes: a local session of the broker serving
// the site (preferred), else one on another replica. When the broker has
// no session anywhere, it waits for one until rt.waitUntil: after a
// gateway restart, or while an agent moves between replicas, its session
// comes back within moments. It returns the broker error to answer when
// there is no route.
func (g *Gateway) locate(ctx context.Context, rt *routed) *routeError {
	waited := false
	for {
		changed := g.reg.changes()
		s, localOnline := g.reg.pick(rt.broker, rt.site)
		if s != nil {
			rt.session = s
			if waited {
				g.metrics.sessionWaits.WithLabelValues("found").Inc()
			}
			return nil
		}
		recs, err := g.shared.lookup(ctx, rt.broker)
		online := localOnline
		var candidates []sessionRecord
		for _, rec := range recs {
			if g.cluster.skipped(rec) {
				continue
			}
			online = true
			if rec.hasSite(rt.site) {
				candidates = append(candidates, rec)
			}
		}
		if len(candidates) > 0 {
			rec := candidates[rand.IntN(len(candidates))]
			rt.remote = &rec
			if waited {
				g.metrics.sessionWaits.WithLabelValues("found").Inc()
			}
			return nil
		}
		if online {
			return &routeError{brokerhttp.UnknownSite, fmt.Sprintf("the agent of broker %s has no site %q", rt.broker, rt.site)}
		}
		// A stopping gateway gets no new sessions, but in a cluster the
		// broker's agents may reappear at another replica.
		stopping := g.draining.Load() && g.cluster == nil
		if stopping || !time.Now().Before(rt.waitUntil) || ctx.Err() != nil {
			if waited {
				g.metrics.sessionWaits.WithLabelValues("timeout").Inc()
			}
			msg := fmt.Sprintf("no agent of broker %s is connected", rt.broker)
			if err != nil {
				msg = fmt.Sprintf("no agent of broker %s is connected to this replica, and the registry of the others is unreachable", rt.broker)
			}
			return &routeError{brokerhttp.BrokerOffline, msg}
		}
		waited = true
		wait := time.Until(rt.waitUntil)
		if g.cluster != nil {
			wait = min(wait, pollEvery)
		}
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}
