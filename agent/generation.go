package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/proxyenv"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// dialSettings are how the agent reaches the gateway and introduces itself
// to it: what a generation of connections dials with.
type dialSettings struct {
	gw     config.GatewayDial
	broker string
	token  config.Secret
}

func settingsOf(cfg *config.Agent) dialSettings {
	return dialSettings{gw: cfg.Gateway, broker: cfg.Broker.ID, token: cfg.Broker.Token}
}

func (s dialSettings) equal(o dialSettings) bool {
	a, b := s.gw, o.gw
	return s.broker == o.broker && s.token == o.token &&
		a.Address == b.Address && slices.Equal(a.Addresses, b.Addresses) && a.Transport == b.Transport &&
		a.Connections == b.Connections && a.CAFile == b.CAFile && a.ServerName == b.ServerName && a.Proxy == b.Proxy
}

// generation is the agent's connections that dial with one dialSettings.
// The agent has one that serves (active) and, after a reload that changed
// the settings, one that tries the new settings (pending) while the
// active one keeps serving: the old sessions are left only once a new one
// is welcomed (make before break, docs/operations.md "Reload").
type generation struct {
	set    dialSettings
	dialer *tunnel.Dialer
	proxy  proxyenv.Choice
	hello  tunnel.Hello // without sites: those are the router's at each dial
	addrs  []string     // gateway.address, then gateway.addresses, without repeats

	// ctx ends the generation's connections; its cause errReconnect lets
	// their sessions drain in the background. Set by startGeneration.
	ctx    context.Context
	cancel context.CancelCauseFunc

	welcomed    chan struct{} // closed at the generation's first welcome
	welcomeOnce sync.Once
	live        atomic.Int32 // the generation's sessions up

	mu   sync.Mutex // guards last
	last *failure   // the last failure to reach the gateway; nil after a welcome
	// failed is signalled (without blocking) at each failure, for the
	// watcher of a pending generation.
	failed chan struct{}
}

// newGeneration builds the dialer and hello of set. It dials nothing.
func (a *Agent) newGeneration(set dialSettings) (*generation, error) {
	choice, err := GatewayProxy(set.gw)
	if err != nil {
		return nil, err
	}
	d, err := newDialer(set.gw, a.opts.Tunnel, choice)
	if err != nil {
		return nil, err
	}
	g := &generation{set: set, dialer: d, proxy: choice, welcomed: make(chan struct{}), failed: make(chan struct{}, 1)}
	for _, addr := range append([]string{set.gw.Address}, set.gw.Addresses...) {
		if !slices.Contains(g.addrs, addr) {
			g.addrs = append(g.addrs, addr)
		}
	}
	host, _ := os.Hostname()
	g.hello = tunnel.Hello{
		Protocol:     tunnel.ProtocolVersion,
		BrokerID:     set.broker,
		Token:        set.token.Reveal(),
		AgentID:      a.agentID,
		AgentVersion: a.opts.Version,
		Hostname:     host,
		OS:           runtime.GOOS + "/" + runtime.GOARCH,
	}
	return g, nil
}

// GatewayProxy is the proxy the agent's connections to the gateway go
// through, and why: gateway.proxy, else HTTPS_PROXY (which NO_PROXY and a
// loopback gateway address turn off).
func GatewayProxy(g config.GatewayDial) (proxyenv.Choice, error) {
	return proxyenv.For(g.Proxy, "gateway.proxy", &url.URL{Scheme: "https", Host: g.Address})
}

// welcome records a session the gateway accepted.
func (g *generation) welcome() {
	g.welcomeOnce.Do(func() { close(g.welcomed) })
	g.mu.Lock()
	g.last = nil
	g.mu.Unlock()
}

// noteFailure records why an attempt to reach the gateway failed.
func (g *generation) noteFailure(f *failure) {
	g.mu.Lock()
	g.last = f
	g.mu.Unlock()
	select {
	case g.failed <- struct{}{}:
	default:
	}
}

// lastFailure is the last failure to reach the gateway since the last
// welcome, nil when there was none.
func (g *generation) lastFailure() *failure {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// startGeneration starts g's connections under the ctx of Run. Callers
// hold a.mu, and Run has started.
func (a *Agent) startGeneration(g *generation) {
	g.ctx, g.cancel = context.WithCancelCause(a.runCtx)
	a.log.Info("dialing the gateway "+g.proxy.String(), "gateway", g.set.gw.Address, "transport", g.transport(),
		"connections", g.set.gw.Connections)
	a.board.conns.resize(g.set.gw.Connections)
	for i := range g.set.gw.Connections {
		a.gens.Go(func() { a.keepConnected(g, i) })
	}
}

// transport is the transport g dials with: a proxy forces tcp.
func (g *generation) transport() string {
	if g.dialer.Proxy != nil {
		return tunnel.DialTCP
	}
	if g.set.gw.Transport == "" {
		return tunnel.DialAuto
	}
	return g.set.gw.Transport
}

// switchWait bounds how long a reload's new gateway settings may take to
// get a session welcomed before the agent says that it keeps serving on
// the old ones (it goes on trying the new ones all the same).
const switchWait = 20 * time.Second

// watchSwitch waits for the first welcome of g, the pending generation of
// a reload, and then moves over: g serves, and the active generation's
// sessions drain. Until then the active generation keeps serving; when g
// fails in a way that retrying cannot mend, or has no welcome after
// switchWait, watchSwitch says so, with the cause and the fix, and keeps
// waiting: a fixed gateway side or a further reload may still mend it.
func (a *Agent) watchSwitch(g *generation) {
	timer := time.NewTimer(switchWait)
	defer timer.Stop()
	timeout := timer.C
	for {
		select {
		case <-g.ctx.Done():
			return // a later reload replaced it, or the agent stops
		case <-g.welcomed:
			a.mu.Lock()
			if a.pending != g {
				a.mu.Unlock()
				return
			}
			old := a.active
			a.active, a.pending = g, nil
			a.mu.Unlock()
			a.log.Info("the reloaded gateway settings are connected; the sessions of the previous settings drain")
			old.cancel(errReconnect)
			return
		case <-timeout:
			timeout = nil
			f := g.lastFailure()
			if f == nil {
				f = &failure{msg: "no session yet", Words: diag.Words{
					Cause: "The new gateway settings have had no session accepted yet.",
					Fix:   "Run: oxbroker check --config FILE, to see where the way to the gateway fails."}}
			}
			a.notTaken(f)
		case <-g.failed:
			if f := g.lastFailure(); f != nil && (f.Lasting || timeout == nil) {
				a.notTaken(f)
			}
		}
	}
}

// notTaken logs why a reload's gateway settings are not in force yet.
func (a *Agent) notTaken(f *failure) {
	a.lastingLines.Log(a.log, slog.LevelError, "reload:"+f.Cause,
		"the reloaded gateway settings cannot connect; the agent keeps serving on the sessions of the previous settings and keeps trying the new ones",
		"cause", f.Cause, "fix", f.Fix)
}

// errReconnect ends a generation of connections whose settings a reload
// replaced: its sessions drain in the background.
var errReconnect = errors.New("gateway or broker settings changed")
