package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Options are the parts of a Gateway that do not come from its config.
type Options struct {
	Logger  *slog.Logger
	Version string
	// DrainTimeout bounds how long Serve waits for in-flight requests after
	// its context ends (default 30 s).
	DrainTimeout time.Duration
	// GoAwayGrace bounds how long a stopping gateway waits, once its own
	// requests have finished, for agents to end their sessions after
	// goaway (default 5 s).
	GoAwayGrace time.Duration
	// Tunnel tunes agent sessions; the zero value is the protocol default.
	Tunnel tunnel.Options
	// Metrics receives the gateway's metrics; nil keeps them private.
	Metrics prometheus.Registerer
}

// Gateway serves agents on the tunnel port and connectors on the API port.
type Gateway struct {
	cfg      *config.Gateway
	opts     Options
	log      *slog.Logger
	brokers  map[string]*brokerAuth
	tls      *tls.Config
	reg      *registry
	failures *throttle
	proxy    *httputil.ReverseProxy
	metrics  *metrics

	tunnelLn *tunnel.Listener
	apiLn    net.Listener
	api      *http.Server

	draining atomic.Bool
	sessions sync.WaitGroup // one per agent session being served
}

type brokerAuth struct {
	id         string
	token      tokenHash
	connectors []tokenHash
}

// New checks cfg and loads the certificate. It binds nothing; call Listen.
func New(cfg *config.Gateway, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	if opts.GoAwayGrace <= 0 {
		opts.GoAwayGrace = 5 * time.Second
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls.cert_file/tls.key_file: %w", err)
	}
	g := &Gateway{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		brokers:  make(map[string]*brokerAuth, len(cfg.Brokers)),
		tls:      &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		reg:      newRegistry(),
		failures: newThrottle(),
		metrics:  newMetrics(opts.Metrics),
	}
	for i, b := range cfg.Brokers {
		ba := &brokerAuth{id: b.ID}
		var ok bool
		if ba.token, ok = parseTokenHash(b.Token); !ok {
			return nil, fmt.Errorf("brokers[%d].token: not a sha256:<hex> hash", i)
		}
		for j, c := range b.ConnectorTokens {
			h, ok := parseTokenHash(c)
			if !ok {
				return nil, fmt.Errorf("brokers[%d].connector_tokens[%d]: not a sha256:<hex> hash", i, j)
			}
			ba.connectors = append(ba.connectors, h)
		}
		g.brokers[b.ID] = ba
	}
	g.proxy = g.newReverseProxy()
	return g, nil
}

// Listen binds the tunnel port (TCP and UDP) and the API port.
func (g *Gateway) Listen() error {
	tl, err := tunnel.Listen(g.cfg.Listen.Tunnel, g.tls, g.opts.Tunnel, g.log)
	if err != nil {
		return fmt.Errorf("listen.tunnel: %w", err)
	}
	al, err := net.Listen("tcp", g.cfg.Listen.API)
	if err != nil {
		tl.Close()
		return fmt.Errorf("listen.api: %w", err)
	}
	if g.cfg.TLS.APITLS {
		al = tls.NewListener(al, g.tls)
	}
	al = framingListener{al} // above TLS: it reads the plain HTTP (framing.go)
	g.tunnelLn, g.apiLn = tl, al
	g.api = &http.Server{
		Handler:           g.apiHandler(),
		ConnContext:       withConn,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Ready reports whether the gateway's listeners are up, with the reason
// when they are not.
func (g *Gateway) Ready() (bool, string) {
	switch {
	case g.tunnelLn == nil:
		return false, "not listening yet"
	case g.draining.Load():
		return false, "shutting down"
	}
	return true, ""
}

// TunnelAddr is the bound tunnel address (TCP; UDP has the same port).
func (g *Gateway) TunnelAddr() net.Addr { return g.tunnelLn.Addr() }

// APIAddr is the bound connector API address.
func (g *Gateway) APIAddr() net.Addr { return g.apiLn.Addr() }

// Run listens and serves until ctx ends, then drains.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Listen(); err != nil {
		return err
	}
	return g.Serve(ctx)
}

// Serve serves agents and connectors until ctx ends. Then it stops taking
// sessions, sends goaway to every agent, lets in-flight requests finish
// within the drain timeout, closes the sessions and returns once every
// goroutine it started has ended.
func (g *Gateway) Serve(ctx context.Context) error {
	g.log.Info("gateway listening", "tunnel", g.TunnelAddr().String(), "api", g.APIAddr().String(),
		"brokers", len(g.brokers), "version", g.opts.Version)
	apiErr := make(chan error, 1)
	go func() { apiErr <- g.api.Serve(g.apiLn) }()

	sessCtx, stopSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSessions()
	var accept sync.WaitGroup
	accept.Add(1)
	go func() {
		defer accept.Done()
		for {
			// Sessions keep being accepted while draining, to be refused
			// with a reject an agent understands at once, rather than a
			// silence it would wait out.
			s, err := g.tunnelLn.Accept(sessCtx)
			if err != nil {
				return
			}
			g.sessions.Add(1)
			go g.serveSession(sessCtx, s)
		}
	}()

	var err error
	apiDone := false
	select {
	case <-ctx.Done():
	case err = <-apiErr:
		err = fmt.Errorf("connector api: %w", err)
		apiDone = true
	}

	g.draining.Store(true)
	for _, s := range g.reg.all() {
		s.ctrl.Send(tunnel.GoAway{Reason: "gateway shutting down"})
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), g.opts.DrainTimeout)
	defer cancel()
	if serr := g.api.Shutdown(drainCtx); serr != nil {
		g.log.Warn("drain: requests still in flight at the deadline", "err", serr)
		g.api.Close()
	}
	g.tunnelLn.StopAccepting()
	accept.Wait()
	// Agents that got goaway drain, half-close their control stream and
	// the sessions end on their own; give them a moment, so that the
	// goaway itself is not cut off by closing the session under it.
	ended := make(chan struct{})
	go func() {
		g.sessions.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(g.opts.GoAwayGrace):
	}
	stopSessions()
	<-ended
	g.tunnelLn.Close()
	if !apiDone {
		<-apiErr // the API server's goroutine has returned after Shutdown
	}
	g.log.Info("gateway stopped")
	return err
}

// hello deadline: an agent that opens a session must say hello quickly.
const helloTimeout = 10 * time.Second

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func (g *Gateway) serveSession(ctx context.Context, s tunnel.Session) {
	defer g.sessions.Done()
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
	b := g.brokers[hello.BrokerID]
	if b == nil || !b.token.matches(hello.Token) {
		g.metrics.authFailures.Inc()
		delay := g.failures.fail(s.RemoteAddr().String())
		log.Warn("agent authentication failed", "broker_id", truncate(hello.BrokerID, 64), "delay", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		g.reject(s, ctrl, tunnel.RejectUnauthorized, "unknown broker id or wrong broker token")
		return
	}
	if g.draining.Load() {
		g.reject(s, ctrl, tunnel.RejectShutdown, "gateway is shutting down; reconnect")
		return
	}
	sites := validSites(hello.Sites, log)
	hello.Sites = sites
	as := newAgentSession(newID(), b.id, hello, s, ctrl)
	log = log.With("broker", b.id, "session", as.id, "agent_id", truncate(hello.AgentID, 64))
	// Registered before the welcome: once the agent knows it is accepted
	// (and reports ready), requests must find it.
	g.reg.add(as)
	g.metrics.sessions.WithLabelValues(s.Transport()).Inc()
	if err := ctrl.Send(tunnel.Welcome{SessionID: as.id, GatewayVersion: g.opts.Version}); err != nil {
		log.Debug("send welcome", "err", err)
		g.reg.remove(as)
		g.metrics.sessions.WithLabelValues(s.Transport()).Dec()
		s.Close()
		return
	}
	log.Info("agent connected", "agent_version", truncate(hello.AgentVersion, 64), "sites", len(sites))

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
	for {
		m, err := ctrl.Recv(time.Time{})
		if errors.Is(err, tunnel.ErrUnknownMessage) {
			continue
		}
		if err != nil {
			break
		}
		switch m := m.(type) {
		case tunnel.Sites:
			sites := validSites(m.Sites, log)
			as.setSites(sites)
			log.Info("agent sites updated", "sites", len(sites))
		case tunnel.GoAway:
			// The agent is draining: route nothing new to this session.
			g.reg.remove(as)
			log.Info("agent draining", "reason", truncate(m.Reason, 128))
		}
	}
	// The agent half-closed the control stream (a drain is over) or the
	// session died: no new requests, and close once the requests in flight
	// have been read to the end, so that their last bytes are not cut.
	g.reg.remove(as)
	g.waitIdle(as)
	stop()
	g.metrics.sessions.WithLabelValues(s.Transport()).Dec()
	as.transport.CloseIdleConnections()
	s.Close()
	wg.Wait()
	log.Info("agent disconnected", "connected_for", time.Since(as.since).Round(time.Millisecond).String())
}

// waitIdle waits until no request is in flight on the session, the
// session has died, or the drain timeout has passed.
func (g *Gateway) waitIdle(as *agentSession) {
	deadline := time.Now().Add(g.opts.DrainTimeout)
	for as.inflight.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-as.sess.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
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

func validSites(in []tunnel.SiteInfo, log *slog.Logger) []tunnel.SiteInfo {
	out := make([]tunnel.SiteInfo, 0, len(in))
	for _, si := range in {
		if !namePattern.MatchString(si.Name) {
			log.Warn("agent announced a site with an invalid name; ignored", "site", truncate(si.Name, 64))
			continue
		}
		out = append(out, si)
	}
	return out
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
