package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// These tests run the agent against several gateways on loopback
// addresses (127.0.0.2, 127.0.0.3, ...: all of 127/8 is loopback on
// Linux), real ones or fake ones (sessiontest.Gateway), and make the name gw.test resolve to
// some of them. The gateway certificate names gw.test and 127.0.0.4 and
// 127.0.0.5, not 127.0.0.2 or 127.0.0.3: a session to those proves the
// certificate was checked against the host name.
const gwName = "gw.test"

var gwCertNames = []string{gwName, "127.0.0.4", "127.0.0.5"}

// resolvesTo makes gwName resolve to ips, and any other name fail.
func resolvesTo(ips ...string) Options {
	return Options{LookupNetIP: fakeLookup(map[string][]string{gwName: ips})}
}

// onSamePort runs start on each of ips with one port for all, as the
// gateways behind one name listen: the first picks a free port, the
// others take it, and on a clash everything starts again on a new one.
func onSamePort[G any](t *testing.T, ips []string, start func(addr string) (G, error), addrOf func(G) string, stop func(G)) (port string, gws []G) {
	t.Helper()
	for range 10 {
		gws = gws[:0]
		port = "0"
		var err error
		for _, ip := range ips {
			var g G
			if g, err = start(net.JoinHostPort(ip, port)); err != nil {
				break
			}
			gws = append(gws, g)
			if port == "0" {
				port = portNumber(t, addrOf(g))
			}
		}
		if err == nil {
			return port, gws
		}
		for _, g := range gws {
			stop(g)
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return "", nil
}

// realGateways starts a real gateway on each of ips, all on one port.
func (e *env) realGateways(t *testing.T, ips ...string) (string, []*testGateway) {
	t.Helper()
	return onSamePort(t, ips, func(addr string) (*testGateway, error) { return e.tryStartGateway(t, addr, 0) },
		func(g *testGateway) string { return g.tunnel }, func(g *testGateway) { g.stop(t) })
}

// sessionsAt returns how many sessions of broker acme each gateway has.
func (e *env) sessionsAt(t *testing.T, gws []*testGateway) []int {
	t.Helper()
	n := make([]int, len(gws))
	for i, g := range gws {
		n[i] = len(g.status(t, e.ConnectorToken).Sessions)
	}
	return n
}

// withAddresses sets gateway.addresses of cfg.
func withAddresses(cfg *config.Agent, addresses ...string) *config.Agent {
	cfg.Gateway.Addresses = addresses
	return cfg
}

// TestConnectionsSpreadOverEndpoints: gateway.connections sessions land on
// as many distinct gateways as there are, distinct configured addresses
// first, and each of them serves.
func TestConnectionsSpreadOverEndpoints(t *testing.T) {
	tests := []struct {
		name        string
		connections int
		// gateways on 127.0.0.2 and .3 share a port and are reached as
		// gw.test; 127.0.0.4 and .5 have their own port and are
		// configured by address.
		named, byIP []string
		// want is the sessions at each gateway, named ones first; a
		// named want of -1 means "one of the named has one session".
		want []int
	}{
		{"two configured addresses", 2, nil, []string{"127.0.0.4", "127.0.0.5"}, []int{1, 1}},
		{"one name, two addresses", 2, []string{"127.0.0.2", "127.0.0.3"}, nil, []int{1, 1}},
		{"one name, two addresses, four connections", 4, []string{"127.0.0.2", "127.0.0.3"}, nil, []int{2, 2}},
		{"configured addresses before the addresses of a name", 2, []string{"127.0.0.2", "127.0.0.3"}, []string{"127.0.0.4"}, []int{-1, -1, 1}},
		{"three connections, three gateways", 3, []string{"127.0.0.2", "127.0.0.3"}, []string{"127.0.0.4"}, []int{1, 1, 1}},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				e := newEnvFor(t, gwCertNames...)
				var gws []*testGateway
				var addresses []string
				name := ""
				if len(tt.named) > 0 {
					port, named := e.realGateways(t, tt.named...)
					gws = append(gws, named...)
					name = net.JoinHostPort(gwName, port)
					addresses = append(addresses, name)
				}
				for _, ip := range tt.byIP {
					g := e.startGateway(t, ip+":0")
					gws = append(gws, g)
					addresses = append(addresses, g.tunnel)
				}
				cfg := withAddresses(e.agentConfig(t, tr, addresses[0], tt.connections, e.BrokerToken), addresses[1:]...)
				a := startAgentWith(t, e, cfg, resolvesTo(tt.named...))

				// Once the agent has every connection up, it dials no more:
				// the sessions the gateways hold then are all there will be.
				var got []int
				testwait.For(t, 15*time.Second, fmt.Sprintf("%d sessions, all up at the agent", tt.connections), func() bool {
					got = e.sessionsAt(t, gws)
					total := 0
					for _, n := range got {
						total += n
					}
					return total == tt.connections && a.Status().Tunnels == tt.connections
				})
				if !spreadAsWanted(got, tt.want) {
					t.Fatalf("sessions at the gateways %v: got %v, want %v", gatewaysOf(gws), got, tt.want)
				}
				for i, g := range gws {
					if got[i] == 0 {
						continue
					}
					resp, b := g.call(t, "GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
					if resp.StatusCode != http.StatusOK {
						t.Errorf("call through the gateway at %s: got %d %s, want 200", g.tunnel, resp.StatusCode, b)
					}
				}
				// The log says where each session is, and for an address of
				// a name, the name.
				for i, g := range gws {
					want := []string{"tunnel up", "gateway=" + g.tunnel}
					if i < len(tt.named) {
						want = append(want, "gateway_name="+name)
					}
					if n := countLogs(a.logs.String(), want...); n != got[i] {
						t.Errorf("agent log: %d lines with %q, want %d", n, want, got[i])
					}
				}
			})
		}
	}
}

// spreadAsWanted compares sessions per gateway; -1 entries of want are a
// group of which exactly one has one session.
func spreadAsWanted(got, want []int) bool {
	group := 0
	for i := range want {
		if want[i] == -1 {
			group += got[i]
			continue
		}
		if got[i] != want[i] {
			return false
		}
	}
	return !slices.Contains(want, -1) || group == 1
}

func gatewaysOf(gws []*testGateway) []string {
	var out []string
	for _, g := range gws {
		out = append(out, g.tunnel)
	}
	return out
}

// countLogs counts the log lines holding every one of parts.
func countLogs(logs string, parts ...string) int {
	n := 0
	for line := range strings.Lines(logs) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestTLSChecksTheHostName: the agent dials the addresses of a name but
// checks the gateway certificate against the name; a name the certificate
// does not hold gets no session, even at the same address, unless
// gateway.server_name says which name to check.
func TestTLSChecksTheHostName(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnvFor(t, gwCertNames...)
			gw := e.startGateway(t, "127.0.0.2:0")
			_, port, _ := net.SplitHostPort(gw.tunnel)
			lookup := Options{LookupNetIP: fakeLookup(map[string][]string{gwName: {"127.0.0.2"}, "other.test": {"127.0.0.2"}})}

			// The certificate's name: a session.
			a := startAgentWith(t, e, e.agentConfig(t, tr, net.JoinHostPort(gwName, port), 1, e.BrokerToken), lookup)
			testwait.For(t, 10*time.Second, "a session at the gateway", func() bool { return len(gw.status(t, e.ConnectorToken).Sessions) == 1 })
			a.stop(t, 10*time.Second)
			testwait.For(t, 10*time.Second, "the session gone", func() bool { return len(gw.status(t, e.ConnectorToken).Sessions) == 0 })

			// Another name for the same address: refused by the agent.
			cfg := e.agentConfig(t, tr, net.JoinHostPort("other.test", port), 1, e.BrokerToken)
			b := startAgentWith(t, e, cfg, lookup)
			testwait.For(t, 10*time.Second, "a certificate error", func() bool {
				return strings.Contains(b.logs.String(), "not other.test")
			})
			if n := len(gw.status(t, e.ConnectorToken).Sessions); n != 0 || b.Ready() {
				t.Fatalf("with a name the certificate does not hold: %d sessions, ready %v; want none", n, b.Ready())
			}
			b.stop(t, 10*time.Second)

			// The same with server_name set to the certificate's name.
			cfg = e.agentConfig(t, tr, net.JoinHostPort("other.test", port), 1, e.BrokerToken)
			cfg.Gateway.ServerName = gwName
			startAgentWith(t, e, cfg, lookup)
			testwait.For(t, 10*time.Second, "a session with server_name", func() bool { return len(gw.status(t, e.ConnectorToken).Sessions) == 1 })
		})
	}
}

// TestStoppedGatewaySendsAgentsElsewhere: a real gateway stops (goaway,
// then shutting_down to whoever dials it while it drains); the agent's
// connection moves to the other gateway behind the same name.
func TestStoppedGatewaySendsAgentsElsewhere(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnvFor(t, gwCertNames...)
			port, gws := e.realGateways(t, "127.0.0.2", "127.0.0.3")
			a := startAgentWith(t, e, e.agentConfig(t, tr, net.JoinHostPort(gwName, port), 1, e.BrokerToken), resolvesTo("127.0.0.2", "127.0.0.3"))
			var at int
			testwait.For(t, 10*time.Second, "a session", func() bool {
				n := e.sessionsAt(t, gws)
				at = slices.Index(n, 1)
				return at >= 0
			})
			other := gws[1-at]
			gws[at].stop(t)
			testwait.For(t, 10*time.Second, "the session at the other gateway", func() bool { return len(other.status(t, e.ConnectorToken).Sessions) == 1 })
			resp, b := other.call(t, "GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("call through the other gateway: got %d %s, want 200", resp.StatusCode, b)
			}
			if !a.Ready() {
				t.Error("agent not ready with a session up")
			}
		})
	}
}

// fakeGateway starts a sessiontest.Gateway with the env's certificate.
func (e *env) fakeGateway(t *testing.T, opts sessiontest.GatewayOptions) *sessiontest.Gateway {
	t.Helper()
	g, err := e.tryFakeGateway(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// tryFakeGateway is fakeGateway that returns the error of the listen.
func (e *env) tryFakeGateway(t *testing.T, opts sessiontest.GatewayOptions) (*sessiontest.Gateway, error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.Certs.Cert, e.Certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	return sessiontest.StartGateway(t, opts)
}

// helloLog is the order in which fake gateways got hellos.
type helloLog struct {
	mu  sync.Mutex // guards log
	log []helloAt
}

type helloAt struct {
	gw     string // the fake gateway's address
	answer string // "welcome" or the reject code
}

func (h *helloLog) all() []helloAt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// fakes starts a fake gateway on each of ips, all on one port, whose
// answer to the n-th hello it gets is code(n): "" a welcome, otherwise a
// reject with that code. Each hello goes to hellos.
func (e *env) fakes(t *testing.T, hellos *helloLog, code func(n int) string, ips ...string) (string, []*sessiontest.Gateway) {
	t.Helper()
	return onSamePort(t, ips, func(addr string) (*sessiontest.Gateway, error) {
		var g *sessiontest.Gateway
		g, err := e.tryFakeGateway(t, sessiontest.GatewayOptions{Addr: addr, Answer: func(n int, _ tunnel.Hello) tunnel.Message {
			hellos.mu.Lock()
			defer hellos.mu.Unlock()
			if c := code(n); c != "" {
				hellos.log = append(hellos.log, helloAt{g.Addr(), c})
				return tunnel.Reject{Code: c, Message: "fake gateway says " + c}
			}
			hellos.log = append(hellos.log, helloAt{g.Addr(), "welcome"})
			return tunnel.Welcome{}
		}})
		return g, err
	}, (*sessiontest.Gateway).Addr, (*sessiontest.Gateway).Close)
}

func welcomeAll(int) string { return "" }

// TestReplacementGoesElsewhere: when a session ends, by the gateway's
// goaway or by the network, the next dial goes to the other gateway
// behind the name, never back to the one just left. Three moves in a row
// each go to the other one (a coin toss would pass 1 time in 8).
func TestReplacementGoesElsewhere(t *testing.T) {
	tests := []struct {
		name string
		end  func(*sessiontest.Gateway)
	}{
		{"goaway", (*sessiontest.Gateway).GoAway},
		{"tunnel down", (*sessiontest.Gateway).Drop},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				e := newEnvFor(t, gwCertNames...)
				hellos := &helloLog{}
				port, fs := e.fakes(t, hellos, welcomeAll, "127.0.0.2", "127.0.0.3")
				startAgentWith(t, e, e.agentConfig(t, tr, net.JoinHostPort(gwName, port), 1, e.BrokerToken), resolvesTo("127.0.0.2", "127.0.0.3"))
				const moves = 3
				for i := range moves + 1 {
					testwait.For(t, 10*time.Second, fmt.Sprintf("hello %d", i+1), func() bool { return len(hellos.all()) == i+1 })
					if i == moves {
						break
					}
					at := hellos.all()[i].gw
					for _, f := range fs {
						if f.Addr() == at {
							testwait.For(t, 5*time.Second, "the session up at the fake", func() bool { return len(f.Live()) == 1 })
							tt.end(f)
						}
					}
				}
				got := hellos.all()
				for i := 1; i < len(got); i++ {
					if got[i].gw == got[i-1].gw {
						t.Fatalf("hellos in order: got %v, want each at the other gateway than the one before", got)
					}
				}
			})
		}
	}
}

// TestShuttingDownRetriesAtOnce: a gateway that answers reject
// shutting_down is retried quickly, at the other gateway when there is
// one: the agent waits at most 100 ms, then 200 ms, 400 ms... before
// those dials (the delays it logs), and is up well within 2 s.
func TestShuttingDownRetriesAtOnce(t *testing.T) {
	shuttingDownFirst := func(k int) func(int) string {
		return func(n int) string {
			if n < k {
				return tunnel.RejectShutdown
			}
			return ""
		}
	}
	for _, tr := range transports {
		t.Run(tr+"/two gateways", func(t *testing.T) {
			e := newEnvFor(t, gwCertNames...)
			hellos := &helloLog{}
			// Each refuses its first hello: shutting_down, the other
			// refuses too, then the first one welcomes.
			port, _ := e.fakes(t, hellos, shuttingDownFirst(1), "127.0.0.2", "127.0.0.3")
			a := startAgentWith(t, e, e.agentConfig(t, tr, net.JoinHostPort(gwName, port), 1, e.BrokerToken), resolvesTo("127.0.0.2", "127.0.0.3"))
			testwait.For(t, 10*time.Second, "the first hello", func() bool { return len(hellos.all()) >= 1 })
			first := time.Now()
			testwait.For(t, 10*time.Second, "agent ready", a.Ready)
			took := time.Since(first)
			got := hellos.all()
			if len(got) != 3 || got[0].gw == got[1].gw || got[2].gw != got[0].gw || got[2].answer != "welcome" {
				t.Fatalf("hellos: got %v, want shutting_down at one gateway, shutting_down at the other, then a welcome at the first", got)
			}
			checkQuickRetries(t, a.logs.String(), 2)
			if took > 2*time.Second {
				t.Errorf("up %s after the first shutting_down, want within 2 s", took.Round(time.Millisecond))
			}
		})
		t.Run(tr+"/one gateway that keeps refusing", func(t *testing.T) {
			e := newEnvFor(t, gwCertNames...)
			hellos := &helloLog{}
			const refusals = 4
			_, fs := e.fakes(t, hellos, shuttingDownFirst(refusals), "127.0.0.4")
			a := startAgentWith(t, e, e.agentConfig(t, tr, fs[0].Addr(), 1, e.BrokerToken), Options{})
			testwait.For(t, 15*time.Second, "agent ready", a.Ready)
			if got := len(hellos.all()); got != refusals+1 {
				t.Fatalf("hellos: got %d, want %d shutting_down then a welcome", got, refusals+1)
			}
			checkQuickRetries(t, a.logs.String(), refusals)
		})
	}
}

// TestRedialResolvesAgain: every dial resolves the name afresh, so a
// replacement goes where DNS points now (a rolling restart that moved
// the gateways), not where it pointed at the agent's start.
func TestRedialResolvesAgain(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnvFor(t, gwCertNames...)
			hellos := &helloLog{}
			port, fs := e.fakes(t, hellos, welcomeAll, "127.0.0.2", "127.0.0.3")
			var mu sync.Mutex // guards ips
			ips := []string{"127.0.0.2"}
			lookup := func(ctx context.Context, network, host string) ([]netip.Addr, error) {
				mu.Lock()
				defer mu.Unlock()
				return fakeLookup(map[string][]string{gwName: ips})(ctx, network, host)
			}
			startAgentWith(t, e, e.agentConfig(t, tr, net.JoinHostPort(gwName, port), 1, e.BrokerToken), Options{LookupNetIP: lookup})
			testwait.For(t, 10*time.Second, "the session at 127.0.0.2", func() bool { return len(fs[0].Live()) == 1 })
			mu.Lock()
			ips = []string{"127.0.0.3"}
			mu.Unlock()
			fs[0].GoAway()
			testwait.For(t, 10*time.Second, "the session at 127.0.0.3", func() bool { return len(fs[1].Live()) == 1 })
			if got := hellos.all(); len(got) != 2 || got[1].gw != fs[1].Addr() {
				t.Errorf("hellos: got %v, want one at %s, then one at %s", got, fs[0].Addr(), fs[1].Addr())
			}
		})
	}
}

var reconnectingIn = regexp.MustCompile(`msg=reconnecting .*in=([0-9.]+[a-zµ]+)`)

// checkQuickRetries checks that the first n reconnect delays the agent
// logged follow the quick schedule: at most 100 ms, 200 ms, 400 ms...
func checkQuickRetries(t *testing.T, logs string, n int) {
	t.Helper()
	var delays []time.Duration
	for _, m := range reconnectingIn.FindAllStringSubmatch(logs, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("reconnect delay %q: %v", m[1], err)
		}
		delays = append(delays, d)
	}
	if len(delays) < n {
		t.Fatalf("reconnect delays logged: got %v, want at least %d", delays, n)
	}
	for i, d := range delays[:n] {
		if w := quickWait(i); d > w {
			t.Errorf("delay %d after shutting_down: got %s, want at most %s (all: %v)", i+1, d, w, delays)
		}
	}
}

// TestProxySpreadsOverNames: through a proxy the agent resolves nothing:
// it asks the proxy for the configured names, spread over them.
func TestProxySpreadsOverNames(t *testing.T) {
	e := newEnv(t) // certificate for localhost
	gw1 := e.startGateway(t, "127.0.0.1:0")
	gw2 := e.startGateway(t, "127.0.0.1:0")
	cp := tunneltest.StartConnectProxy(t, "u", "p")
	var mu sync.Mutex // guards targets
	var targets []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targets = append(targets, r.Host)
		mu.Unlock()
		cp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	names := []string{"localhost:" + portNumber(t, gw1.tunnel), "localhost:" + portNumber(t, gw2.tunnel)}
	cfg := withAddresses(e.agentConfig(t, "auto", names[0], 2, e.BrokerToken), names[1])
	cfg.Gateway.Proxy = "http://u:p@" + ln.Addr().String()
	noLookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		t.Errorf("the agent resolved %s itself; through a proxy the proxy resolves names", host)
		return nil, fmt.Errorf("no lookup")
	}
	startAgentWith(t, e, cfg, Options{LookupNetIP: noLookup})
	testwait.For(t, 15*time.Second, "a session at each gateway", func() bool {
		return len(gw1.status(t, e.ConnectorToken).Sessions) == 1 && len(gw2.status(t, e.ConnectorToken).Sessions) == 1
	})
	mu.Lock()
	got := slices.Sorted(slices.Values(targets))
	mu.Unlock()
	if !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Errorf("CONNECT targets: got %v, want the configured names %v", got, names)
	}
}

func portNumber(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(p); err != nil {
		t.Fatal(err)
	}
	return p
}
