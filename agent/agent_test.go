package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/internal/syncbuf"
	"github.com/oxsecurity/oxbroker/internal/testenv"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var transports = tunnel.Transports

// syncBuffer collects log output written from many goroutines.
type syncBuffer = syncbuf.Buffer

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// env is what an agent test needs around the agent (testenv: the
// certificates, the tokens of broker "acme", a Jira stand-in) and a
// client for the gateway's connector API.
type env struct {
	*testenv.Env
	client *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvFor(t, "127.0.0.1", "localhost")
}

// newEnvFor is newEnv with a gateway certificate for names.
func newEnvFor(t *testing.T, names ...string) *env {
	t.Helper()
	e := &env{
		Env:    testenv.New(t, testenv.Options{Names: names}),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second},
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// testGateway is a real gateway serving in-process.
type testGateway struct {
	gw       *gateway.Gateway
	api      string
	tunnel   string
	logs     *syncBuffer
	client   *http.Client
	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
}

// startGateway serves a gateway with broker acme; tunnelAddr is
// "127.0.0.1:0" or the address of a gateway that has stopped.
func (e *env) startGateway(t *testing.T, tunnelAddr string) *testGateway {
	t.Helper()
	// A port a stopped gateway held may take a moment to be free again.
	tg, err := e.tryStartGateway(t, tunnelAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// tryStartGateway is startGateway that returns the error of a listen
// that still fails after retrying for wait.
func (e *env) tryStartGateway(t *testing.T, tunnelAddr string, wait time.Duration) (*testGateway, error) {
	t.Helper()
	cfg := &config.Gateway{
		Listen: config.GatewayListen{Tunnel: tunnelAddr, API: "127.0.0.1:0"},
		TLS:    config.GatewayTLS{CertFile: e.Certs.Cert, KeyFile: e.Certs.Key},
		Brokers: []config.BrokerEntry{{ID: "acme", Token: gateway.HashToken(e.BrokerToken),
			ConnectorTokens: []string{gateway.HashToken(e.ConnectorToken)}}},
		Registry: config.Registry{Type: config.RegistryMemory},
		Log:      config.Log{Level: "debug", Format: "text"},
	}
	tg := &testGateway{logs: &syncBuffer{}, client: e.client, served: make(chan error, 1)}
	var err error
	tg.gw, err = gateway.New(cfg, gateway.Options{Logger: newLogger(tg.logs), Version: "gw-test", DrainTimeout: 10 * time.Second, GoAwayGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(wait, func() bool { err = tg.gw.Listen(); return err == nil })
	if err != nil {
		return nil, err
	}
	tg.api = tg.gw.APIAddr().String()
	tg.tunnel = tg.gw.TunnelAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	tg.cancel = cancel
	go func() { tg.served <- tg.gw.Serve(ctx) }()
	t.Cleanup(func() {
		tg.stop(t)
		if t.Failed() {
			t.Logf("gateway log:\n%s", tg.logs)
		}
	})
	tg.status(t, e.ConnectorToken) // Serve is serving
	return tg, nil
}

// stop cancels Serve's context and waits for Serve to return.
func (tg *testGateway) stop(t *testing.T) {
	t.Helper()
	tg.stopOnce.Do(func() {
		tg.client.CloseIdleConnections() // unused connections hold up http.Server.Shutdown for 5 s
		tg.cancel()
		select {
		case <-tg.served:
		case <-time.After(20 * time.Second):
			t.Errorf("gateway Serve did not return 20 s after its context ended")
		}
	})
}

// do sends a connector request; safe outside the test goroutine.
func (tg *testGateway) do(method, path, token string) (*http.Response, []byte, error) {
	return connectortest.Call(context.Background(), tg.client, method, "http://"+tg.api+path, token, nil, "")
}

func (tg *testGateway) call(t *testing.T, method, path, token string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := tg.do(method, path, token)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (tg *testGateway) status(t *testing.T, token string) gateway.BrokerStatus {
	t.Helper()
	resp, b := tg.call(t, "GET", "/v1/brokers/acme", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/brokers/acme: got %d %s, want 200", resp.StatusCode, b)
	}
	var st gateway.BrokerStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// agentConfig builds the agent's config from YAML, as the agent's
// command does, with no environment.
func (e *env) agentConfig(t *testing.T, transport, address string, connections int, brokerToken string) *config.Agent {
	t.Helper()
	yaml := fmt.Sprintf(`broker:
  id: acme
  token: %q
state_dir: %q
gateway:
  address: %q
  transport: %s
  connections: %d
  ca_file: %q
  proxy: ""
sites:
  - name: jira
    url: %q
    auth:
      type: bearer
      token: %q
admin:
  listen: ""
log:
  level: debug
`, brokerToken, filepath.Join(e.Dir, "state"), address, transport, connections, e.Certs.CACert, e.JiraURL, e.JiraToken)
	cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("agent config: %v\n%s", err, yaml)
	}
	return cfg
}

// runningAgent is an Agent whose Run is going on in a goroutine.
type runningAgent struct {
	*Agent
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
}

func startAgent(t *testing.T, e *env, cfg *config.Agent) *runningAgent {
	t.Helper()
	return startAgentWith(t, e, cfg, Options{})
}

// startAgentWith is startAgent with some options set; the logger,
// version and drain timeout are the test's.
func startAgentWith(t *testing.T, e *env, cfg *config.Agent, opts Options) *runningAgent {
	t.Helper()
	ra := &runningAgent{logs: &syncBuffer{}, done: make(chan struct{})}
	opts.Logger, opts.Version, opts.DrainTimeout = newLogger(ra.logs), "agent-test", 10*time.Second
	var err error
	ra.Agent, err = New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	go func() { defer close(ra.done); ra.Run(ctx) }()
	t.Cleanup(func() {
		ra.stop(t, 15*time.Second)
		if t.Failed() {
			t.Logf("agent log:\n%s", ra.logs)
		}
		for _, tok := range []string{e.JiraToken, e.BrokerToken, e.ConnectorToken} {
			if strings.Contains(ra.logs.String(), tok) {
				t.Errorf("the agent log contains a token (%s…)", tok[:8])
			}
		}
	})
	return ra
}

// stop cancels Run's context and waits for Run to return.
func (ra *runningAgent) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	ra.cancel()
	select {
	case <-ra.done:
	case <-time.After(timeout):
		t.Fatalf("Run did not return %s after its context ended", timeout)
	}
}

func TestAgentServesConnectorCalls(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			gw := e.startGateway(t, "127.0.0.1:0")
			a := startAgent(t, e, e.agentConfig(t, tr, gw.tunnel, 2, e.BrokerToken))

			testwait.For(t, 10*time.Second, "agent ready", a.Ready)
			var st gateway.BrokerStatus
			testwait.For(t, 10*time.Second, "two sessions at the gateway", func() bool {
				st = gw.status(t, e.ConnectorToken)
				return len(st.Sessions) == 2
			})
			for _, s := range st.Sessions {
				if s.AgentID != a.AgentID() || s.Version != "agent-test" || s.Transport != tr || len(s.Sites) != 1 || s.Sites[0] != "jira" {
					t.Errorf("session at the gateway: got %+v, want agent %s, version agent-test, %s, sites [jira]", s, a.AgentID(), tr)
				}
			}

			resp, b := gw.call(t, "GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET myself through the broker: got %d %s, want 200", resp.StatusCode, b)
			}
			if resp.Header.Get(brokerhttp.HeaderRequestID) == "" {
				t.Errorf("response has no %s", brokerhttp.HeaderRequestID)
			}
			reqs := e.Jira.Requests()
			if len(reqs) != 1 {
				t.Fatalf("requests at Jira: got %d, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Method != "GET" || got.Path != "/rest/api/3/myself" {
				t.Errorf("request at Jira: got %s %s, want GET /rest/api/3/myself", got.Method, got.Path)
			}
			if auth, want := got.Header.Get("Authorization"), "Bearer "+e.JiraToken; auth != want {
				t.Errorf("Authorization at Jira: got %q, want the site's Bearer token", auth)
			}
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, e.ConnectorToken) || strings.Contains(v, e.BrokerToken) {
						t.Errorf("header %s at Jira carries the connector or broker token", k)
					}
				}
			}

			// A site the agent does not serve.
			resp, b = gw.call(t, "GET", "/b/acme/nosite/rest/api/3/myself", e.ConnectorToken)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.UnknownSite) {
				t.Errorf("unknown site: got %d %s %s, want 404 unknown_site", resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError), b)
			}
			if n := len(e.Jira.Requests()); n != 1 {
				t.Errorf("requests at Jira after a call to an unknown site: got %d, want still 1", n)
			}
		})
	}
}

func TestRunReturnsAfterCancel(t *testing.T) {
	// silent is a UDP port that answers nothing: a QUIC dial to it waits
	// for an answer; its first datagram says the dial has begun. Over TCP
	// nothing listens on it, and the dial fails.
	silent := func(t *testing.T) (string, <-chan struct{}) {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		got := make(chan struct{})
		go func() {
			if _, _, err := c.ReadFrom(make([]byte, 2048)); err == nil {
				close(got)
			}
		}()
		return c.LocalAddr().String(), got
	}
	tests := []struct {
		name      string
		transport string
		connected bool // else the gateway address answers nothing
	}{
		{"connected over quic", "quic", true},
		{"connected over tcp", "tcp", true},
		{"dialling quic", "quic", false},
		{"dialling tcp", "tcp", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			addr, dialling := silent(t)
			var gw *testGateway
			if tt.connected {
				gw = e.startGateway(t, "127.0.0.1:0")
				addr = gw.tunnel
			}
			// Whatever runs now (the gateway, the stand-in) may go on;
			// what the agent starts must be gone after Run. The
			// gateway's accept loop may start just after this snapshot.
			ignore := []goleak.Option{goleak.IgnoreCurrent(),
				goleak.IgnoreAnyFunction("github.com/oxsecurity/oxbroker/tunnel.(*Listener).Accept")}
			a := startAgent(t, e, e.agentConfig(t, tt.transport, addr, 2, e.BrokerToken))
			if tt.connected {
				testwait.For(t, 10*time.Second, "agent ready", a.Ready)
				resp, b := gw.call(t, "GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("call: got %d %s, want 200", resp.StatusCode, b)
				}
				e.client.CloseIdleConnections()
			} else if tt.transport == "tcp" {
				testwait.For(t, 5*time.Second, "a failed dial", func() bool { return strings.Contains(a.logs.String(), "reconnecting") })
			} else {
				testwait.Recv(t, 5*time.Second, "the QUIC dial's first datagram", dialling) // the dial waits for an answer
			}

			start := time.Now()
			a.stop(t, 5*time.Second)
			t.Logf("Run returned %s after cancel", time.Since(start).Round(time.Millisecond))
			if a.Ready() {
				t.Error("Ready after Run returned: got true, want false")
			}
			if tt.connected {
				testwait.For(t, 5*time.Second, "sessions gone at the gateway", func() bool {
					return len(gw.status(t, e.ConnectorToken).Sessions) == 0
				})
				e.client.CloseIdleConnections()
			}
			if err := goleak.Find(ignore...); err != nil {
				t.Errorf("goroutines left after Run returned: %v", err)
			}
		})
	}
}

func TestWrongBrokerToken(t *testing.T) {
	e := newEnv(t)
	gw := e.startGateway(t, "127.0.0.1:0")
	a := startAgent(t, e, e.agentConfig(t, "tcp", gw.tunnel, 1, gateway.NewToken()))
	testwait.For(t, 5*time.Second, "the agent logs the refusal", func() bool {
		return strings.Contains(a.logs.String(), "the gateway refused the broker id or token")
	})
	if a.Ready() {
		t.Error("Ready with a refused token: got true, want false")
	}
	if st := gw.status(t, e.ConnectorToken); len(st.Sessions) != 0 {
		t.Errorf("sessions at the gateway: got %+v, want none", st.Sessions)
	}
	// Backing off toward the 30 s cap does not hold up the stop.
	a.stop(t, 3*time.Second)
}

// connected starts a gateway and an agent with one connection to it over
// tr, and returns them once the session is up at both ends.
func (e *env) connected(t *testing.T, tr string) (*testGateway, *runningAgent) {
	t.Helper()
	gw := e.startGateway(t, "127.0.0.1:0")
	a := startAgent(t, e, e.agentConfig(t, tr, gw.tunnel, 1, e.BrokerToken))
	testwait.For(t, 10*time.Second, "agent ready", a.Ready)
	testwait.For(t, 5*time.Second, "session at the gateway", func() bool { return len(gw.status(t, e.ConnectorToken).Sessions) == 1 })
	return gw, a
}

// callResult is the outcome of a call made in the background.
type callResult struct {
	resp *http.Response
	body []byte
	err  error
}

// callInFlight calls GET myself through gw in the background, with Jira
// answering after delay, and returns once Jira has the request: the
// call is in flight. The channel gives its outcome.
func (e *env) callInFlight(t *testing.T, gw *testGateway, delay time.Duration) <-chan callResult {
	t.Helper()
	e.Jira.SetDelay(delay)
	done := make(chan callResult, 1)
	go func() {
		resp, b, err := gw.do("GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
		done <- callResult{resp, b, err}
	}()
	testwait.For(t, 5*time.Second, "the request reaches Jira", func() bool { return len(e.Jira.Requests()) == 1 })
	return done
}

// wantServed checks that the call in flight is answered 200 within
// timeout.
func wantServed(t *testing.T, done <-chan callResult, timeout time.Duration, when string) {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("in-flight request: %v", r.err)
		}
		if r.resp.StatusCode != http.StatusOK {
			t.Fatalf("in-flight request: got %d %s, want 200", r.resp.StatusCode, r.body)
		}
	case <-time.After(timeout):
		t.Fatalf("the in-flight request had no answer %s %s", timeout, when)
	}
}

// TestStopDrainsInFlight: a request in flight when Run's context ends
// still gets its answer before Run returns.
func TestStopDrainsInFlight(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			gw, a := e.connected(t, tr)
			done := e.callInFlight(t, gw, time.Second)
			a.stop(t, 10*time.Second)
			wantServed(t, done, 5*time.Second, "after Run returned")
			// The real gateway acknowledged the agent's goaway once the
			// call had finished (tunnel/spec.md), rather than leaving the
			// agent to give up waiting.
			if strings.Contains(a.logs.String(), "did not acknowledge") {
				t.Error("the gateway did not acknowledge the agent's goaway")
			}
		})
	}
}

// TestGoAwayDrainsAndReconnects: a gateway that shuts down while a slow
// request is in flight lets the request finish (the agent drains the
// session after goaway), and the agent reconnects to the gateway that
// takes the address over.
func TestGoAwayDrainsAndReconnects(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			gw1, a := e.connected(t, tr)
			done := e.callInFlight(t, gw1, 1500*time.Millisecond)
			stopped := make(chan struct{})
			go func() { defer close(stopped); gw1.stop(t) }()
			wantServed(t, done, 10*time.Second, "after the goaway")
			e.Jira.SetDelay(0)
			<-stopped
			if !strings.Contains(a.logs.String(), "gateway asked us to move") {
				t.Error("the agent did not log the goaway")
			}
			testwait.For(t, 10*time.Second, "Ready false with the gateway gone", func() bool { return !a.Ready() })
			testwait.For(t, 5*time.Second, "a reconnect attempt", func() bool { return strings.Contains(a.logs.String(), "reconnecting") })

			// A new gateway on the same address gets the agent back.
			gw2 := e.startGateway(t, gw1.tunnel)
			testwait.For(t, 15*time.Second, "agent ready again", a.Ready)
			testwait.For(t, 5*time.Second, "session at the new gateway", func() bool { return len(gw2.status(t, e.ConnectorToken).Sessions) == 1 })
			resp, b := gw2.call(t, "GET", "/b/acme/jira/rest/api/3/myself", e.ConnectorToken)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("call through the new gateway: got %d %s, want 200", resp.StatusCode, b)
			}
		})
	}
}

// TestTunnelOptionsApply: Options.Tunnel tunes the agent's sessions. A
// QUIC dial to a port where nothing answers gives up after
// HandshakeTimeout.
func TestTunnelOptionsApply(t *testing.T) {
	e := newEnv(t)
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := u.LocalAddr().String()
	u.Close()
	a := startAgentWith(t, e, e.agentConfig(t, "quic", addr, 1, e.BrokerToken),
		Options{Tunnel: tunnel.Options{HandshakeTimeout: 300 * time.Millisecond}})
	testwait.For(t, 3*time.Second, "the QUIC dial fails at the 300 ms handshake timeout", func() bool {
		return strings.Contains(a.logs.String(), "tunnel down")
	})
}
