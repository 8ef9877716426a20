package gateway

// The life of one agent session, from its hello to its close
// (tunnel/spec.md): authentication, the limits, registration, the control
// stream, and the drain. gateway.go holds the server that accepts them.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// hello deadline: an agent that opens a session must say hello quickly.
const helloTimeout = 10 * time.Second

// serveSession runs one agent session until it ends: the hello, judged
// and answered with welcome or reject, then the control loop, and the
// drain when the agent or the gateway says goaway.
func (g *Gateway) serveSession(ctx context.Context, s tunnel.Session) {
	defer g.sessions.Done()
	// The session holds a slot of limits.unauthenticated_sessions until
	// its hello is accepted, or it ends: one refused holds it through the
	// failure delay too, so that refused sessions cannot pile up.
	accepted := sync.OnceFunc(func() { <-g.unauth })
	defer accepted()
	log := g.log.With("remote", s.RemoteAddr().String(), "transport", s.Transport())
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	ctrl, hello, err := tunnel.ServerHandshake(hctx, s)
	cancel()
	if err != nil {
		log.Debug("agent handshake failed", "err", err)
		s.Close()
		return
	}
	if hello.Protocol != tunnel.ProtocolVersion {
		g.reject(s, ctrl, tunnel.RejectProtocol, fmt.Sprintf("protocol %d is not supported; this gateway speaks %d", hello.Protocol, tunnel.ProtocolVersion))
		return
	}
	// An address over its failure budget is refused before its hello is
	// judged (auth.go, failureLimiter); the attempt admitted here is
	// settled below, by fail when the hello is wrong.
	addr := s.RemoteAddr().String()
	if wait, ok := g.failures.admit(addr, ""); !ok {
		g.metrics.authLimited.WithLabelValues("tunnel").Inc()
		g.rare.Log(log, slog.LevelWarn, "tunnel-limited", "agent refused: too many failed authentications from its address", "retry_in", wait.String())
		g.reject(s, ctrl, tunnel.RejectUnauthorized, fmt.Sprintf("too many failed authentications from this address; retry in %d s", retrySeconds(wait)))
		return
	}
	b, err := g.brokerAuth(ctx, hello.BrokerID)
	if err != nil {
		// A broker outside the config, and the registry cannot say: no
		// reject, which an agent would take for a wrong token and back
		// off for long; it retries on its usual backoff.
		g.failures.settle(addr, "", false)
		g.logLimited(log, slog.LevelWarn, "", "registry", "agent not authenticated: the registry is unreachable", "broker_id", clip.String(hello.BrokerID, 64))
		s.Close()
		return
	}
	if b == nil || !b.token.matches(hello.Token) {
		g.metrics.authFailures.Inc()
		delay := g.failures.fail(s.RemoteAddr().String())
		g.logLimited(log, slog.LevelWarn, clip.String(hello.BrokerID, 64), "auth", "agent authentication failed", "broker_id", clip.String(hello.BrokerID, 64), "delay", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		g.reject(s, ctrl, tunnel.RejectUnauthorized, "unknown broker id or wrong broker token")
		return
	}
	g.failures.settle(addr, "", false)
	if g.draining.Load() {
		g.reject(s, ctrl, tunnel.RejectShutdown, "gateway is shutting down; reconnect")
		return
	}
	// Every live session of the broker counts, draining ones too: a
	// session that said goaway is no longer routed to, but lasts until
	// the agent half-closes its control stream.
	maxSessions := g.cfg.Limits.Sessions()
	if !g.live.acquire(b.id, maxSessions) {
		g.overLimit(log, limitBrokerSessions, b.id, "agent session refused: the broker has limits.sessions_per_broker sessions already", "max", maxSessions)
		g.reject(s, ctrl, tunnel.RejectOverLimit, fmt.Sprintf("broker %s has %d sessions on this gateway, as many as it takes (limits.sessions_per_broker)", b.id, maxSessions))
		return
	}
	defer g.live.release(b.id)
	sites, ok := g.checkSites(hello.Sites, b.id, log)
	if !ok {
		g.reject(s, ctrl, tunnel.RejectOverLimit, fmt.Sprintf("the hello announces %d sites; this gateway takes %d (limits.sites_per_broker)",
			len(hello.Sites), g.cfg.Limits.Sites()))
		return
	}
	hello.Sites = sites
	as := newAgentSession(newID(), b.id, hello, s)
	log = log.With("broker", b.id, "session", as.id, "agent_id", clip.String(hello.AgentID, 64))
	// The control stream's reader runs from here on (the agent says
	// nothing before the welcome).
	var draining bool // the agent sent goaway; read and written in the loop's goroutine
	as.loop = tunnel.StartControl(s, ctrl, tunnel.Handlers{
		GoAway: func(m tunnel.GoAway) {
			if draining {
				return
			}
			// The agent is draining: route nothing new to this session,
			// before any later message is read.
			draining = true
			g.reg.remove(as)
			g.shared.withdraw(as)
			g.logLimited(log, slog.LevelInfo, b.id, "draining", "agent draining", "reason", clip.String(m.Reason, 128))
		},
		Sites: func(m tunnel.Sites) {
			sites, ok := g.checkSites(m.Sites, b.id, log)
			if !ok {
				return // the session keeps the sites it had
			}
			as.setSites(sites)
			g.reg.notify()
			if !draining {
				g.shared.publish(as)
			}
			g.logLimited(log, slog.LevelInfo, b.id, "sites", "agent sites updated", "sites", len(sites))
		},
		BadFrame: func(err error) {
			// A bad frame is not the end of a drain: the loop closes the
			// session at once, requests in flight included (tunnel/spec.md).
			g.overLimit(log, limitControl, b.id, "agent sent a bad control frame; session closed", "err", err)
		},
	})
	loop := as.loop
	// Registered before the welcome: once the agent knows it is accepted
	// (and reports ready), requests must find it.
	g.reg.add(as)
	g.shared.publish(as)
	g.metrics.sessions.WithLabelValues(s.Transport()).Inc()
	if err := loop.Send(tunnel.Welcome{SessionID: as.id, GatewayVersion: g.opts.Version}); err != nil {
		log.Debug("send welcome", "err", err)
		g.reg.remove(as)
		g.shared.withdraw(as)
		g.metrics.sessions.WithLabelValues(s.Transport()).Dec()
		s.Close()
		loop.Wait()
		return
	}
	accepted()
	g.logLimited(log, slog.LevelInfo, b.id, "connected", "agent connected", "agent_version", clip.String(hello.AgentVersion, 64), "sites", len(sites))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // agents may open only the control stream; refuse the rest
		defer wg.Done()
		for {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				return
			}
			st.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	select {
	case <-loop.GoAway():
		// Requests picked before the removal may still open streams;
		// once they have all finished, nothing will, and the agent may
		// stop taking streams: acknowledge.
		wg.Go(func() {
			g.waitIdle(as)
			as.ack()
		})
		<-loop.Done()
	case <-loop.Done():
	}
	// The agent half-closed the control stream (a drain is over) or the
	// session died: no new requests, and close once the requests in flight
	// have been read to the end, so that their last bytes are not cut.
	g.reg.remove(as)
	g.shared.withdraw(as)
	g.waitIdle(as)
	stop()
	g.metrics.sessions.WithLabelValues(s.Transport()).Dec()
	as.transport.CloseIdleConnections()
	s.Close()
	loop.Wait()
	wg.Wait()
	g.logLimited(log, slog.LevelInfo, b.id, "disconnected", "agent disconnected", "connected_for", time.Since(as.since).Round(time.Millisecond).String())
}

// waitIdle waits until no request is in flight on the session, the
// session has died, or the drain timeout has passed.
func (g *Gateway) waitIdle(as *agentSession) {
	t := time.NewTimer(g.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-as.inflight.Idle():
	case <-as.sess.Done():
	case <-t.C:
	}
}

// reject tells the agent why it is refused and closes the session once the
// agent has read it (the agent closes on reject) or after a short wait.
func (g *Gateway) reject(s tunnel.Session, ctrl *tunnel.Control, code, msg string) {
	if err := ctrl.Send(tunnel.Reject{Code: code, Message: msg}); err == nil {
		select {
		case <-s.Done():
		case <-time.After(2 * time.Second):
		}
	}
	s.Close()
}
