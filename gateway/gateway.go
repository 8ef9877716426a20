package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/lograte"
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
	// SessionWait bounds how long a call to a known broker that has no
	// session anywhere waits for one (default DefaultSessionWait).
	SessionWait time.Duration
	// RegistryTTL and RegistryRefresh time the records of registry.type
	// redis (defaults DefaultRecordTTL and DefaultRefresh).
	RegistryTTL     time.Duration
	RegistryRefresh time.Duration
}

// Gateway serves agents on the tunnel port and connectors on the API port.
type Gateway struct {
	cfg       *config.Gateway
	opts      Options
	log       *slog.Logger
	brokers   map[string]*brokerAuth
	tls       *tls.Config
	reg       *registry      // this process's sessions
	shared    sharedRegistry // what replicas share (registry.type)
	cluster   *cluster       // forwarding between replicas; nil with registry.type memory
	advertise string         // this replica's internal URL; "" with registry.type memory
	failures  *failureLimiter
	lines     *lograte.Limiter // log lines agents and strangers drive (limits.go)
	rare      *lograte.Limiter // warnings once per 10 s: refused addresses, refused internal calls
	live      brokerCount      // live sessions per broker (limits.sessions_per_broker)
	// unauth has a slot for each session whose hello is not yet accepted
	// (limits.unauthenticated_sessions).
	unauth  chan struct{}
	proxy   *httputil.ReverseProxy
	public  *publicBase // what Ox-Broker-Public-Base says
	metrics *metrics
	board   *statusBoard // what the status page shows (statusapi.go)

	tunnelLn   *tunnel.Listener
	apiLn      net.Listener
	api        *http.Server
	internalLn net.Listener // nil with registry.type memory
	internal   *http.Server

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
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	opts.Metrics = cmp.Or(opts.Metrics, prometheus.Registerer(prometheus.NewRegistry()))
	opts.DrainTimeout = cmp.Or(opts.DrainTimeout, tunnel.DefaultDrainTimeout)
	opts.GoAwayGrace = cmp.Or(opts.GoAwayGrace, 5*time.Second)
	opts.SessionWait = cmp.Or(opts.SessionWait, DefaultSessionWait)
	opts.RegistryTTL = cmp.Or(opts.RegistryTTL, DefaultRecordTTL)
	opts.RegistryRefresh = cmp.Or(opts.RegistryRefresh, DefaultRefresh)
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
		shared:   memoryRegistry{},
		failures: newFailureLimiter(failureBurst, failureEvery, failureSources),
		metrics:  newMetrics(opts.Metrics),
		board:    newStatusBoard(),
		lines:    newLines(),
		rare:     newRareLines(),
		live:     brokerCount{n: make(map[string]int)},
		unauth:   make(chan struct{}, cfg.Limits.Unauthenticated()),
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
	if cfg.Registry.Type == config.RegistryRedis {
		if g.cluster, err = newCluster(cfg.Cluster.SecretFile, g.log); err != nil {
			return nil, err
		}
		g.advertise = advertiseBase(cfg.Registry.Advertise)
		if g.shared, err = newRedisRegistry(cfg, g.cluster.id, opts, g.log, g.metrics); err != nil {
			return nil, err
		}
	}
	if g.public, err = newPublicBase(cfg); err != nil {
		return nil, err
	}
	g.proxy = g.newReverseProxy()
	return g, nil
}

// brokerAuth returns what authenticates broker id (its token hashes), from
// the config or else from the shared registry; nil when there is none. An
// error means that the registry could not say.
func (g *Gateway) brokerAuth(ctx context.Context, id string) (*brokerAuth, error) {
	if b := g.brokers[id]; b != nil {
		return b, nil
	}
	return g.shared.broker(ctx, id)
}

// known reports whether id is a broker of the config or one the shared
// registry has defined, as far as it already knows: it is for metric
// labels, and must not make a request of a stranger cost a Redis lookup.
func (g *Gateway) known(id string) bool {
	if g.brokers[id] != nil {
		return true
	}
	k, ok := g.shared.(interface{ knows(id string) bool })
	return ok && k.knows(id)
}

// Listen binds the tunnel port (TCP and UDP) and the API port.
func (g *Gateway) Listen() error {
	tl, err := tunnel.Listen(g.cfg.Listen.Tunnel, g.tls, g.withLimitHook(g.opts.Tunnel), g.log)
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
	if g.cluster != nil {
		il, err := net.Listen("tcp", g.cfg.Listen.Internal)
		if err != nil {
			tl.Close()
			al.Close()
			return fmt.Errorf("listen.internal: %w", err)
		}
		g.internalLn = il
		g.internal = &http.Server{
			Handler:           g.internalHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
	}
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

// InternalAddr is the bound internal listener's address, nil with
// registry.type memory.
func (g *Gateway) InternalAddr() net.Addr {
	if g.internalLn == nil {
		return nil
	}
	return g.internalLn.Addr()
}

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
		"internal", addrString(g.InternalAddr()), "brokers", len(g.brokers), "version", g.opts.Version)
	apiErr := make(chan error, 1)
	go func() { apiErr <- g.api.Serve(g.apiLn) }()
	internalErr := make(chan error, 1)
	if g.internal != nil {
		go func() { internalErr <- g.internal.Serve(g.internalLn) }()
	}
	// The counts of log lines held back (limits.go) are told once per
	// interval, until the very end.
	linesCtx, stopLines := context.WithCancel(context.Background())
	linesDone := make(chan struct{})
	go func() {
		defer close(linesDone)
		var wg sync.WaitGroup
		wg.Go(func() { g.rare.Run(linesCtx) })
		g.lines.Run(linesCtx)
		wg.Wait()
	}()
	regCtx, leave := context.WithCancel(context.Background())
	defer leave()
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		g.shared.run(regCtx)
	}()

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
			select {
			case g.unauth <- struct{}{}: // given back once the hello is accepted
			default:
				g.overLimit(g.log, limitUnauthenticated, "", "tunnel session refused: limits.unauthenticated_sessions have not said hello yet",
					"remote", s.RemoteAddr().String(), "max", cap(g.unauth))
				s.Close()
				continue
			}
			g.sessions.Add(1)
			go g.serveSession(sessCtx, s)
		}
	}()

	var err error
	apiDone, internalDone := false, g.internal == nil
	select {
	case <-ctx.Done():
	case err = <-apiErr:
		err = fmt.Errorf("connector api: %w", err)
		apiDone = true
	case err = <-internalErr:
		err = fmt.Errorf("internal listener: %w", err)
		internalDone = true
	}

	g.draining.Store(true)
	g.reg.notify() // requests waiting for a session look again
	// The other replicas stop forwarding here before the agents move:
	// this replica's session records go first. Forwarded requests that
	// still come are served while the sessions last.
	leave()
	<-regDone
	for _, s := range g.reg.all() {
		s.loop.Send(tunnel.GoAway{Reason: "gateway shutting down"})
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), g.opts.DrainTimeout)
	defer cancel()
	if serr := g.api.Shutdown(drainCtx); serr != nil {
		g.log.Warn("drain: requests still in flight at the deadline", "err", serr)
		g.api.Close()
	}
	// Nothing more is routed once the connector API and the internal
	// listener have shut down: acknowledge the goaway, and the agents
	// stop taking streams on their sessions here (tunnel/spec.md).
	if !internalDone {
		if serr := g.internal.Shutdown(drainCtx); serr != nil {
			g.internal.Close()
		}
		<-internalErr
		internalDone = true
	}
	for _, s := range g.reg.all() {
		s.ack()
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
	g.shared.close()
	if g.cluster != nil {
		g.cluster.transport.CloseIdleConnections()
	}
	stopLines()
	<-linesDone
	g.log.Info("gateway stopped")
	return err
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
