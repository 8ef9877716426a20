package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/certpool"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/lograte"
	"github.com/oxsecurity/oxbroker/internal/proxyenv"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
)

// Options are the parts of an Agent that do not come from its config.
type Options struct {
	Logger  *slog.Logger
	Version string
	// DrainTimeout bounds how long in-flight requests may take to finish
	// when the agent stops or the gateway sends goaway (default 30 s).
	DrainTimeout time.Duration
	// Tunnel tunes sessions; the zero value is the protocol default.
	Tunnel tunnel.Options
	// Metrics receives the agent's metrics; nil keeps them private.
	Metrics prometheus.Registerer
	// LookupNetIP resolves the host names of the gateway addresses before
	// each dial; nil means net.DefaultResolver.LookupNetIP. Tests make a
	// name resolve to loopback addresses with it.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Agent keeps the tunnel sessions up and serves the gateway's requests.
type Agent struct {
	opts    Options
	log     *slog.Logger
	agentID string
	metrics *metrics
	lines   *lograte.Limiter // log lines the gateway can drive
	// lastingLines are the failures that retrying cannot mend: a line per
	// cause, then one every repeatLasting with the count held back.
	lastingLines *lograte.Limiter
	spread       *spread // where the connections are
	// router serves requests; Reload swaps it, and requests already
	// routed finish on the proxy they started on.
	router atomic.Pointer[router]
	probes chan probeRequest // sites to probe, for Run's prober

	mu       sync.Mutex // guards the fields below, which Reload changes
	cfg      *config.Agent
	active   *generation // the connections that serve
	pending  *generation // a reload's new gateway settings, not welcomed yet; nil when none
	runCtx   context.Context
	stopping bool                             // Run is waiting for gens: no generation may start
	controls map[*tunnel.ControlLoop]struct{} // control streams of live sessions

	expiryMu sync.Mutex // serialises publishExpiry: a reset and its sets are one change

	live   atomic.Int32   // sessions up, of every generation
	gens   sync.WaitGroup // the connections of every generation
	drains sync.WaitGroup // sessions draining after goaway or a reconnecting reload

	board statusBoard // what the status page shows beyond the config (statusapi.go)
}

// New checks cfg, loads the agent id from state_dir, resolves Cloud IDs
// of cloud_site entries and builds the sites' proxies. It dials nothing.
func New(ctx context.Context, cfg *config.Agent, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckAllowlists(cfg); err != nil {
		return nil, err
	}
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	opts.Metrics = cmp.Or(opts.Metrics, prometheus.Registerer(prometheus.NewRegistry()))
	opts.DrainTimeout = cmp.Or(opts.DrainTimeout, tunnel.DefaultDrainTimeout)
	if opts.LookupNetIP == nil {
		opts.LookupNetIP = net.DefaultResolver.LookupNetIP
	}
	a := &Agent{cfg: cfg, opts: opts, log: opts.Logger, metrics: newMetrics(opts.Metrics),
		lines: lograte.New(10, 10*time.Second, 16), lastingLines: lograte.New(1, repeatLasting, 64),
		probes: make(chan probeRequest, probeQueue), controls: make(map[*tunnel.ControlLoop]struct{}),
		board: statusBoard{started: time.Now()}}
	a.opts.Tunnel = a.withLimitHook(opts.Tunnel)
	a.spread = newSpread(a.metrics.gateways)
	var err error
	if a.agentID, err = loadAgentID(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.active, err = a.newGeneration(settingsOf(cfg)); err != nil {
		return nil, err
	}
	r, err := newRouter(ctx, cfg.Sites, a.routerOptions(cfg, nil))
	if err != nil {
		return nil, err
	}
	a.router.Store(r)
	a.cfg = cfg
	a.publishExpiry(cfg.Sites)
	return a, nil
}

// routerOptions are the options of a router for cfg; prev is the router
// in force at a reload, nil at start.
func (a *Agent) routerOptions(cfg *config.Agent, prev *router) routerOptions {
	return routerOptions{broker: cfg.Broker.ID, log: a.log, metrics: a.metrics, observer: calls{a}, prev: prev, up: a.sendSites}
}

// NewDialer builds the agent's tunnel dialer for g: the gateway
// certificate is checked against the system roots plus gateway.ca_file,
// always; the proxy is gateway.proxy, or else HTTPS_PROXY (GatewayProxy).
// `oxbroker check` dials with it too.
func NewDialer(g config.GatewayDial, o tunnel.Options) (*tunnel.Dialer, error) {
	choice, err := GatewayProxy(g)
	if err != nil {
		return nil, err
	}
	return newDialer(g, o, choice)
}

func newDialer(g config.GatewayDial, o tunnel.Options, proxy proxyenv.Choice) (*tunnel.Dialer, error) {
	roots, err := certpool.Load("gateway.ca_file", g.CAFile, nil)
	if err != nil {
		return nil, err
	}
	return &tunnel.Dialer{
		Transport: g.Transport,
		TLS:       &tls.Config{RootCAs: roots, ServerName: g.ServerName, MinVersion: tls.VersionTLS12},
		Proxy:     proxy.URL,
		Options:   o,
	}, nil
}

// AgentID is the persistent id of this agent.
func (a *Agent) AgentID() string { return a.agentID }

// Ready reports whether the agent can serve (Readiness, without the why).
func (a *Agent) Ready() bool {
	ok, _ := a.Readiness()
	return ok
}

// Readiness reports whether the agent can serve, for /readyz: at least one
// tunnel session is up and at least one site can serve. The reason names
// what is wrong (without a tunnel: the last failure to reach the gateway,
// cause and fix), then the sites that are down or failed their probe, one
// line each.
func (a *Agent) Readiness() (bool, string) {
	r := a.router.Load()
	down := r.down()
	var why []string
	ok := true
	if a.live.Load() == 0 {
		ok = false
		line := "no tunnel to the gateway is up"
		if f := a.gatewayProblem(); f != nil {
			line += ": " + problemLine(f.Cause, f.Fix)
		}
		why = append(why, line)
	}
	if len(down) > 0 && len(down) == len(r.order) {
		ok = false
	}
	return ok, strings.Join(append(append(why, down...), r.unhealthy()...), "\n")
}

// sendSites tells the gateway, on every session, the sites of the router
// in force; a site that came up brings its upstream URL.
func (a *Agent) sendSites() {
	infos := a.router.Load().infos()
	a.mu.Lock()
	controls := make([]*tunnel.ControlLoop, 0, len(a.controls))
	for c := range a.controls {
		controls = append(controls, c)
	}
	a.mu.Unlock()
	for _, c := range controls {
		if err := c.Send(tunnel.Sites{Sites: infos}); err != nil {
			a.log.Warn("could not send the new site list on a session; it will be sent on reconnect", "err", err)
		}
	}
}

// Run keeps gateway.connections sessions up until ctx ends, then drains:
// sessions stop taking streams, in-flight requests get DrainTimeout to
// finish, and Run returns once every goroutine it started has ended. It
// probes each site at start (and Reload after each reload).
//
// Run has no error to return: a gateway that cannot be reached, refuses
// the session or goes away is retried with backoff and reported through
// Readiness, the status page and the log, never by ending Run; only ctx
// ends it. Whatever stops the agent for good is found by New.
func (a *Agent) Run(ctx context.Context) {
	bg, stopBg := context.WithCancel(context.Background())
	var bgDone sync.WaitGroup
	bgDone.Go(func() { a.lines.Run(bg) })
	bgDone.Go(func() { a.lastingLines.Run(bg) })
	defer func() {
		stopBg()
		bgDone.Wait()
	}()
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		a.runProbes(ctx)
	}()
	a.requestProbe(probeRequest{})

	a.mu.Lock()
	a.runCtx = ctx
	a.startGeneration(a.active)
	a.mu.Unlock()

	<-ctx.Done()
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	a.gens.Wait()
	a.drains.Wait()
	<-probing
	a.router.Load().close()
}

// keepConnected is one of the connections of g: pick an endpoint, dial,
// serve, redial, until g ends. Each dial resolves the gateway addresses
// afresh and goes where the agent's other connections are not, and never
// back to the endpoint just left when there is another (docs/operations.md,
// "How the agent's connections spread").
func (a *Agent) keepConnected(g *generation, idx int) {
	ctx := g.ctx
	clog := a.log.With("conn", idx)
	r := newRetry()
	viaProxy := g.dialer.Proxy != nil
	var last string            // the endpoint of the last attempt
	tried := map[string]bool{} // endpoints tried since the last welcome
	for ctx.Err() == nil {
		log := clog
		var (
			d   time.Duration
			f   *failure
			err error
		)
		eps, rerr := resolve(ctx, a.opts.LookupNetIP, g.addrs, viaProxy)
		switch {
		case ctx.Err() != nil:
			return
		case len(eps) == 0:
			d, err = r.after(false, 0, rerr), rerr
			f = &failure{"tunnel down: cannot resolve the gateway address", diag.GatewayTarget(g.set.gw, g.addrs[0]).Resolve(rerr)}
			a.board.conns.down(idx, err, d)
		default:
			if rerr != nil {
				log.Warn("some gateway addresses do not resolve; using the others", "err", rerr)
			}
			ep := a.spread.pick(eps, last, tried)
			a.board.conns.dialing(idx, ep)
			log = log.With("gateway", ep.addr)
			if ep.name != ep.addr {
				log = log.With("gateway_name", ep.name)
			}
			start := time.Now()
			welcomed, serr := a.session(ctx, g, log, ep, idx)
			a.spread.release(ep)
			if ctx.Err() != nil {
				return
			}
			if welcomed {
				clear(tried)
			}
			tried[ep.addr], last = true, ep.addr
			var rej *tunnel.RejectError
			if errors.As(serr, &rej) && rej.Reject.Code == tunnel.RejectShutdown {
				log.Info("the gateway is shutting down and did not take the session")
			}
			d, err = r.after(welcomed, time.Since(start), serr), serr
			f = explainEnd(g, ep, welcomed, time.Since(start), serr)
			a.board.conns.down(idx, err, d)
		}
		a.metrics.reconnects.Inc()
		if f != nil {
			a.report(log, g, f, err, d)
		} else {
			log.Info("reconnecting", "in", d.Round(time.Millisecond).String())
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// errGoAway ends a session whose gateway asked us to move.
var errGoAway = errors.New("gateway sent goaway")

// session dials one session to ep and serves it until it ends, ctx ends,
// or the gateway sends goaway; on goaway the old session drains in the
// background while the caller dials the replacement. welcomed says whether
// the gateway accepted the session. idx is the connection's, for the
// status page.
func (a *Agent) session(ctx context.Context, g *generation, log *slog.Logger, ep endpoint, idx int) (welcomed bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hello := g.hello
	hello.Sites = a.router.Load().infos()
	s, err := g.dialer.DialName(dctx, ep.addr, ep.host)
	if err != nil {
		return false, err
	}
	ctrl, welcome, err := tunnel.ClientHandshake(dctx, s, hello)
	if err != nil {
		s.Close()
		return false, err
	}
	log = log.With("session", welcome.SessionID, "transport", s.Transport())
	log.Info("tunnel up", "gateway_version", welcome.GatewayVersion, "via", g.proxy.String())
	g.welcome()
	g.live.Add(1)
	a.board.conns.up(idx, s, welcome.SessionID)
	a.live.Add(1)
	a.metrics.tunnels.WithLabelValues(s.Transport()).Inc()
	a.spread.sessionUp(ep.addr)
	// The control stream: goaway is the only message an agent acts on.
	// The gateway's half-close is, after a goaway (either side's), its
	// acknowledgement: it will route nothing more to this session
	// (tunnel/spec.md). A bad frame is no acknowledgement: the loop
	// closes the session.
	loop := tunnel.StartControl(s, ctrl, tunnel.Handlers{
		BadFrame: func(err error) {
			a.overLimit(log, limitControl, "the gateway sent a bad control frame; closing the session", "err", err)
		},
	})
	a.mu.Lock()
	a.controls[loop] = struct{}{}
	a.mu.Unlock()

	srv := a.newStreamServer(log)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(streamhttp.Listener(s, streamhttp.MaxConcurrentStreams))
	}()

	// finish drains the session: it tells the gateway to send no more
	// requests (goaway; unless the session is dead or the gateway asked
	// first) and keeps serving until the gateway acknowledges, because the
	// gateway may have routed requests here before it knew; then it waits
	// for the requests in flight, half-closes the control stream and waits
	// for the gateway to close the session once it has read every response
	// to the end. Closing at once would cut the tail of a response still
	// buffered in the transport.
	finish := func(tellGateway bool) {
		a.mu.Lock()
		delete(a.controls, loop)
		a.mu.Unlock()
		if tellGateway {
			loop.Send(tunnel.GoAway{Reason: "agent draining"})
		}
		select {
		case <-loop.Done():
		case <-s.Done():
		case <-time.After(ackWait):
			log.Warn("the gateway did not acknowledge the drain; closing anyway", "waited", ackWait.String())
		}
		a.drain(srv, log)
		loop.CloseWrite()
		select {
		case <-s.Done():
		case <-time.After(closeWait):
		}
		s.Close()
		<-served
		loop.Wait()
		g.live.Add(-1)
		a.live.Add(-1)
		a.metrics.tunnels.WithLabelValues(s.Transport()).Dec()
		a.spread.sessionDown(ep.addr)
	}
	select {
	case <-s.Done():
		finish(false)
		if loop.BadFrame() {
			return true, fmt.Errorf("closed after a bad control frame from the gateway: %w", loop.Err())
		}
		return true, errors.New("session closed by the gateway or the network")
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), errReconnect) {
			// A reload changed the gateway settings: the next generation
			// dials at once while this session drains.
			log.Info("settings changed; draining this session")
			a.drains.Add(1)
			go func() {
				defer a.drains.Done()
				finish(true)
			}()
			return true, nil
		}
		finish(true)
		log.Info("tunnel closed")
		return true, nil
	case g := <-loop.GoAway():
		log.Info("gateway asked us to move; draining this session", "reason", clip.String(g.Reason, 128))
		a.drains.Add(1)
		go func() {
			defer a.drains.Done()
			finish(false)
		}()
		return true, errGoAway
	}
}

// ackWait bounds how long a draining session waits for the gateway's
// acknowledgement of a goaway. The gateway gives it once the requests it
// routed to the session have finished, so a long download can outlast
// it: then the session stops taking streams without it, and the requests
// in flight still finish.
const ackWait = 5 * time.Second

// closeWait bounds how long a drained session waits for the gateway to
// close it after the last response was written.
const closeWait = 5 * time.Second

// drain stops taking streams and waits for in-flight requests.
func (a *Agent) drain(srv *http.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("drain: requests still in flight at the deadline", "err", err)
		srv.Close()
	}
}

// newStreamServer serves the gateway's streams. GuardBodies: refusals
// made before the body reach the gateway at once, and a stalled body frees
// its site's slot.
func (a *Agent) newStreamServer(log *slog.Logger) *http.Server {
	return streamhttp.NewServer(brokerhttp.GuardBodies(http.HandlerFunc(a.serveStream), 0), log)
}

// publishExpiry makes the token-expiry gauge say what sites, the config
// in force, says: one series per site with auth.expires and none for the
// others, so that an alert on a removed site or date stops. It warns of
// tokens near expiry. Callers call it once a config has taken effect,
// never for one that may still be refused.
func (a *Agent) publishExpiry(sites []config.Site) {
	a.expiryMu.Lock()
	defer a.expiryMu.Unlock()
	a.metrics.expiry.Reset()
	for _, site := range sites {
		if site.Auth.Expires.IsZero() {
			continue
		}
		exp := site.Auth.Expires.Time
		a.metrics.expiry.WithLabelValues(site.Name).Set(float64(exp.Unix()))
		switch left := time.Until(exp); {
		case left <= 0:
			a.log.Error("the site's Jira token has expired; create a new one and update auth.token", "site", site.Name, "expired", exp.Format(time.DateOnly))
		case left < diag.TokenExpiryWarning:
			a.log.Warn("the site's Jira token expires soon; create a new one before then", "site", site.Name,
				"expires", exp.Format(time.DateOnly), "days_left", int(left.Hours()/24))
		}
	}
}

// serveStream hands a request from the tunnel to the current router.
func (a *Agent) serveStream(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get(brokerhttp.HeaderOp) != "" {
		a.serveOp(w, req) // an operation of the agent itself (remote check), never sent to Jira
		return
	}
	a.router.Load().ServeHTTP(w, req)
}
