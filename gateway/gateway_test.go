package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/internal/rawhttp"
	"github.com/oxsecurity/oxbroker/internal/syncbuf"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var transports = tunnel.Transports

// slowTests turns on tests that wait for protocol timeouts (the 10 s hello
// deadline), which are too slow for every run.
var slowTests = os.Getenv("OXBROKER_SLOW_TESTS") != ""

// syncBuffer collects log output written from many goroutines.
type syncBuffer = syncbuf.Buffer

// testGateway is a Gateway serving on loopback with two brokers: "acme"
// and "other", each with a broker token and a connector token.
type testGateway struct {
	gw       *Gateway
	roots    *x509.CertPool
	api      string // host:port of the connector API
	tunnel   string // host:port of the tunnel listener (TCP and UDP)
	internal string // host:port of the internal listener; "" with registry.type memory
	client   *http.Client
	logs     *syncBuffer

	acmeBroker, acmeConnector   string
	otherBroker, otherConnector string

	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
	stopErr  error
}

func startGateway(t *testing.T) *testGateway {
	t.Helper()
	return startGatewayWith(t, newTestTokens(), nil)
}

// testTokens are the tokens of the brokers of a test gateway; replicas of
// one cluster share them.
type testTokens struct {
	acmeBroker, acmeConnector   string
	otherBroker, otherConnector string
}

func newTestTokens() testTokens {
	return testTokens{acmeBroker: NewToken(), acmeConnector: NewToken(), otherBroker: NewToken(), otherConnector: NewToken()}
}

// startGatewayWith starts a gateway with the brokers of tok; change, if
// not nil, adjusts its config and options first.
func startGatewayWith(t *testing.T, tok testTokens, change func(*config.Gateway, *Options)) *testGateway {
	t.Helper()
	dir := t.TempDir()
	files, err := devcert.WriteFiles(dir, "gateway", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGateway{
		roots:          x509.NewCertPool(),
		logs:           &syncBuffer{},
		acmeBroker:     tok.acmeBroker,
		acmeConnector:  tok.acmeConnector,
		otherBroker:    tok.otherBroker,
		otherConnector: tok.otherConnector,
		served:         make(chan error, 1),
	}
	tg.roots.AppendCertsFromPEM(pem)
	cfg := &config.Gateway{
		Listen: config.GatewayListen{Tunnel: "127.0.0.1:0", API: "127.0.0.1:0"},
		TLS:    config.GatewayTLS{CertFile: files.Cert, KeyFile: files.Key},
		Brokers: []config.BrokerEntry{
			{ID: "acme", Token: HashToken(tg.acmeBroker), ConnectorTokens: []string{HashToken(tg.acmeConnector)}},
			{ID: "other", Token: HashToken(tg.otherBroker), ConnectorTokens: []string{HashToken(tg.otherConnector)}},
		},
		Registry: config.Registry{Type: config.RegistryMemory},
		Log:      config.Log{Level: "debug", Format: "text"},
	}
	log := slog.New(slog.NewTextHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{Logger: log, Version: "gw-test", DrainTimeout: 5 * time.Second, GoAwayGrace: 300 * time.Millisecond}
	if change != nil {
		change(cfg, &opts)
	}
	tg.gw, err = New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.gw.Listen(); err != nil {
		t.Fatal(err)
	}
	tg.api = tg.gw.APIAddr().String()
	tg.tunnel = tg.gw.TunnelAddr().String()
	tg.internal = addrString(tg.gw.InternalAddr())
	tg.client = &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	tg.cancel = cancel
	go func() { tg.served <- tg.gw.Serve(ctx) }()
	t.Cleanup(func() {
		tg.stop(t)
		if t.Failed() {
			t.Logf("gateway log:\n%s", tg.logs)
		}
		for _, tok := range []string{tg.acmeBroker, tg.acmeConnector, tg.otherBroker, tg.otherConnector} {
			if strings.Contains(tg.logs.String(), tok) {
				t.Errorf("the gateway log contains a token (%s…)", tok[:8])
			}
		}
	})
	return tg
}

// stop cancels Serve's context and waits for Serve to return.
func (tg *testGateway) stop(t *testing.T) error {
	t.Helper()
	tg.stopOnce.Do(func() {
		// A connection the client dialled but never used counts as
		// active for 5 s in http.Server.Shutdown; close those first.
		tg.client.CloseIdleConnections()
		tg.cancel()
		select {
		case tg.stopErr = <-tg.served:
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return 15 s after its context ended")
		}
	})
	return tg.stopErr
}

// call sends a connector request; path is sent as written (no cleaning).
func (tg *testGateway) call(t *testing.T, method, path, token string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := tg.do(method, path, token, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// do is call for goroutines other than the test's.
func (tg *testGateway) do(method, path, token string, header http.Header, body string) (*http.Response, []byte, error) {
	return connectortest.Call(context.Background(), tg.client, method, "http://"+tg.api+path, token, header, body)
}

// status returns GET /v1/brokers/{broker}.
func (tg *testGateway) status(t *testing.T, broker, token string) BrokerStatus {
	t.Helper()
	resp, b := tg.call(t, "GET", "/v1/brokers/"+broker, token, nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/brokers/%s: got %d %s, want 200", broker, resp.StatusCode, b)
	}
	var st BrokerStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("GET /v1/brokers/%s: %v in %s", broker, err, b)
	}
	return st
}

func (tg *testGateway) waitSessions(t *testing.T, n int) BrokerStatus {
	t.Helper()
	var st BrokerStatus
	testwait.For(t, 5*time.Second, fmt.Sprintf("acme has %d sessions", n), func() bool {
		st = tg.status(t, "acme", tg.acmeConnector)
		return len(st.Sessions) == n
	})
	return st
}

// dial opens a tunnel session to the gateway, as an agent would.
func (tg *testGateway) dial(t *testing.T, transport string) tunnel.Session {
	t.Helper()
	d := &tunnel.Dialer{Transport: transport, TLS: &tls.Config{RootCAs: tg.roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.Dial(ctx, tg.tunnel)
	if err != nil {
		t.Fatalf("dial %s over %s: %v", tg.tunnel, transport, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (tg *testGateway) hello() tunnel.Hello {
	return tunnel.Hello{
		BrokerID:     "acme",
		Token:        tg.acmeBroker,
		AgentID:      "agent-1",
		AgentVersion: "1.2.3",
		Hostname:     "host-1",
		OS:           "linux/amd64",
		Sites:        []tunnel.SiteInfo{{Name: "jira", Type: "jira", URL: "https://jira.example", AuthType: "bearer"}},
	}
}

// agent dials the gateway over transport and says hello as a fake agent
// whose streams handler serves; a reject is an error.
func (tg *testGateway) agent(t *testing.T, transport string, h tunnel.Hello, handler http.Handler) (*sessiontest.Agent, error) {
	t.Helper()
	return sessiontest.Connect(t, tg.dial(t, transport), h, handler)
}

// connect is agent for a hello the gateway welcomes: it waits until the
// gateway has registered the session.
func (tg *testGateway) connect(t *testing.T, transport string, h tunnel.Hello, handler http.Handler) *sessiontest.Agent {
	t.Helper()
	connector := tg.acmeConnector
	if h.BrokerID == "other" {
		connector = tg.otherConnector
	}
	return tg.connectAs(t, transport, h, handler, connector)
}

// connectAs is connect for a broker whose status connector can read.
func (tg *testGateway) connectAs(t *testing.T, transport string, h tunnel.Hello, handler http.Handler, connector string) *sessiontest.Agent {
	t.Helper()
	a, err := tg.agent(t, transport, h, handler)
	if err != nil {
		t.Fatalf("handshake over %s: %v", transport, err)
	}
	// The gateway registers a session just after it sends welcome
	// (TestRegisteredBeforeWelcome); wait for it.
	id := a.Welcome.SessionID
	testwait.For(t, 5*time.Second, "session "+id+" registered", func() bool {
		return slices.ContainsFunc(tg.status(t, h.BrokerID, connector).Sessions, func(s SessionStatus) bool { return s.ID == id })
	})
	return a
}

// startWithAgent starts a gateway with one agent connected over
// transport, serving with echoHandler("a1").
func startWithAgent(t *testing.T, transport string) (*testGateway, *sessiontest.Agent) {
	t.Helper()
	tg := startGateway(t)
	return tg, tg.connect(t, transport, tg.hello(), echoHandler("a1"))
}

// echo is what echoHandler saw of a request.
type echo struct {
	Agent      string
	Method     string
	RequestURI string
	Host       string
	Site       string
	RequestID  string
	HasAuth    bool
	Header     http.Header
	Body       string
}

// echoHandler is a tiny agent: it answers with what it received.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, hasAuth := r.Header["Authorization"]
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Agent: name, Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Site: r.Header.Get(brokerhttp.HeaderSite), RequestID: r.Header.Get(brokerhttp.HeaderRequestID),
			HasAuth: hasAuth, Header: r.Header, Body: string(body),
		})
	})
}

func decodeEcho(t *testing.T, resp *http.Response, b []byte) echo {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d %s, want 200 from the agent", resp.StatusCode, b)
	}
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("agent answer: %v in %s", err, b)
	}
	return e
}

// brokerError checks a broker error response: status, header and body.
func brokerError(t *testing.T, resp *http.Response, b []byte, wantStatus int, wantCode brokerhttp.Code) brokerhttp.Body {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, wantStatus, b)
	}
	if got := resp.Header.Get(brokerhttp.HeaderError); got != string(wantCode) {
		t.Errorf("%s header: got %q, want %q", brokerhttp.HeaderError, got, wantCode)
	}
	var body brokerhttp.Body
	if err := json.Unmarshal(b, &body); err != nil {
		t.Errorf("error body: %v in %q", err, b)
	}
	if body.Error.Code != wantCode {
		t.Errorf("error body code: got %q, want %q", body.Error.Code, wantCode)
	}
	if body.Error.Message == "" {
		t.Error("error body has no message")
	}
	return body
}

func TestHandshake(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel() // each subtest waits out a reject grace
			tg := startGateway(t)
			tests := []struct {
				name       string
				hello      func(h *tunnel.Hello)
				wantReject string // "" for welcome
			}{
				{"valid", func(*tunnel.Hello) {}, ""},
				{"wrong token", func(h *tunnel.Hello) { h.Token = NewToken() }, tunnel.RejectUnauthorized},
				{"token of another broker", func(h *tunnel.Hello) { h.Token = tg.otherBroker }, tunnel.RejectUnauthorized},
				{"unknown broker", func(h *tunnel.Hello) { h.BrokerID = "nosuch" }, tunnel.RejectUnauthorized},
				{"wrong protocol", func(h *tunnel.Hello) { h.Protocol = tunnel.ProtocolVersion + 1 }, tunnel.RejectProtocol},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := tg.dial(t, tr)
					h := tg.hello()
					tt.hello(&h)
					a, err := sessiontest.Connect(t, s, h, nil)
					if tt.wantReject == "" {
						if err != nil {
							t.Fatalf("handshake: got %v, want welcome", err)
						}
						w := a.Welcome
						if w.SessionID == "" || w.GatewayVersion != "gw-test" {
							t.Errorf("welcome: got %+v, want a session id and gateway version gw-test", w)
						}
						st := tg.waitSessions(t, 1)
						if st.Sessions[0].ID != w.SessionID {
							t.Errorf("registered session id: got %s, want %s", st.Sessions[0].ID, w.SessionID)
						}
						s.Close()
						tg.waitSessions(t, 0)
						return
					}
					var rej *tunnel.RejectError
					if !errors.As(err, &rej) {
						t.Fatalf("handshake: got %v, want a reject %s", err, tt.wantReject)
					}
					if rej.Reject.Code != tt.wantReject {
						t.Errorf("reject code: got %q, want %q (message %q)", rej.Reject.Code, tt.wantReject, rej.Reject.Message)
					}
					if strings.Contains(rej.Reject.Message, h.Token) {
						t.Error("the reject message repeats the token")
					}
					if tt.wantReject == tunnel.RejectProtocol {
						// The gateway closes a rejected session itself when
						// the agent does not (after a 2 s grace).
						select {
						case <-s.Done():
						case <-time.After(5 * time.Second):
							t.Error("the gateway did not close the rejected session within 5 s")
						}
					}
					s.Close() // as the agent does after a reject
					if st := tg.status(t, "acme", tg.acmeConnector); len(st.Sessions) != 0 {
						t.Errorf("a rejected agent was registered: %+v", st.Sessions)
					}
				})
			}
		})
	}
}

// TestNoHello: a session that never says hello is not registered, and
// is closed at the hello deadline (10 s; only with OXBROKER_SLOW_TESTS).
func TestNoHello(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGateway(t)
			silent := tg.dial(t, tr)
			// A second session opens its control stream and stalls in
			// the middle of a frame.
			stalled := tg.dial(t, tr)
			if _, err := tunneltest.Open(t, stalled.OpenStream).Write([]byte{0, 0, 1}); err != nil {
				t.Fatal(err)
			}
			// A good agent still gets in meanwhile.
			tg.connect(t, tr, tg.hello(), echoHandler("good"))
			if got := tg.status(t, "acme", tg.acmeConnector); len(got.Sessions) != 1 {
				t.Fatalf("sessions: got %+v, want only the agent that said hello", got.Sessions)
			}

			if !slowTests {
				t.Log("not waiting for the 10 s hello deadline; set OXBROKER_SLOW_TESTS=1 to")
				return
			}
			for name, s := range map[string]tunnel.Session{"silent": silent, "stalled": stalled} {
				select {
				case <-s.Done():
				case <-time.After(helloTimeout + 5*time.Second):
					t.Errorf("%s session: still open %s after it started; want closed at the hello deadline", name, helloTimeout+5*time.Second)
				}
			}
		})
	}
}

func TestConnectorRequestPassesThrough(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, _ := startWithAgent(t, tr)

			tests := []struct {
				name, method, path, body string
				wantURI                  string
			}{
				{"plain", "GET", "/b/acme/jira/rest/api/3/myself", "", "/rest/api/3/myself"},
				{"root", "GET", "/b/acme/jira/", "", "/"},
				{"encoded slash", "GET", "/b/acme/jira/rest/api/3/issue/A%2FB", "", "/rest/api/3/issue/A%2FB"},
				{"dot-dot", "GET", "/b/acme/jira/rest/api/3/../../../etc/passwd", "", "/rest/api/3/../../../etc/passwd"},
				{"encoded dot-dot", "GET", "/b/acme/jira/rest/%2e%2e/%2E%2E/x", "", "/rest/%2e%2e/%2E%2E/x"},
				{"double slashes", "GET", "/b/acme/jira//rest//api", "", "//rest//api"},
				{"double encoding", "GET", "/b/acme/jira/rest/a%252Fb", "", "/rest/a%252Fb"},
				{"encoded space and sub-delims", "GET", "/b/acme/jira/rest/a%20b/c;d=e/f,g", "", "/rest/a%20b/c;d=e/f,g"},
				{"query", "GET", "/b/acme/jira/rest/api/3/search/jql?jql=project%20%3D%20OX&fields=a,b&next=%2F",
					"", "/rest/api/3/search/jql?jql=project%20%3D%20OX&fields=a,b&next=%2F"},
				{"query with semicolon and bad escape", "GET", "/b/acme/jira/x?a=1;b=2&c=%zz&d", "", "/x?a=1;b=2&c=%zz&d"},
				{"post with body", "POST", "/b/acme/jira/rest/api/3/issue", `{"fields":{}}`, "/rest/api/3/issue"},
				{"delete", "DELETE", "/b/acme/jira/rest/api/3/issue/OX-1", "", "/rest/api/3/issue/OX-1"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, b := tg.call(t, tt.method, tt.path, tg.acmeConnector, nil, tt.body)
					e := decodeEcho(t, resp, b)
					if e.RequestURI != tt.wantURI {
						t.Errorf("target at the agent: got %q, want %q", e.RequestURI, tt.wantURI)
					}
					if e.Method != tt.method {
						t.Errorf("method: got %s, want %s", e.Method, tt.method)
					}
					if e.Body != tt.body {
						t.Errorf("body: got %q, want %q", e.Body, tt.body)
					}
					if e.Site != "jira" {
						t.Errorf("%s: got %q, want jira", brokerhttp.HeaderSite, e.Site)
					}
				})
			}
		})
	}
}

func TestConnectorHeaders(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, _ := startWithAgent(t, tr)

			h := http.Header{}
			h.Set(brokerhttp.HeaderSite, "evil")
			h.Set(brokerhttp.HeaderRequestID, "forged-id")
			h.Set(brokerhttp.HeaderError, "forged")
			h.Set("Ox-Broker-Anything", "x")
			h.Set("X-Forwarded-For", "203.0.113.9")
			h.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
			h.Set("Accept", "application/json")
			h.Set("X-Custom", "kept")
			resp, b := tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector, h, "")
			e := decodeEcho(t, resp, b)

			if e.HasAuth {
				t.Errorf("the agent received Authorization %q; the connector token must stay at the gateway", e.Header.Get("Authorization"))
			}
			if strings.Contains(string(b), tg.acmeConnector) {
				t.Error("the connector token reached the agent")
			}
			if e.Site != "jira" {
				t.Errorf("%s: got %q, want jira (the gateway's, not the connector's)", brokerhttp.HeaderSite, e.Site)
			}
			if got := e.Header.Values(brokerhttp.HeaderSite); len(got) != 1 {
				t.Errorf("%s values: got %q, want one", brokerhttp.HeaderSite, got)
			}
			if e.RequestID == "" || e.RequestID == "forged-id" {
				t.Errorf("%s at the agent: got %q, want one made by the gateway", brokerhttp.HeaderRequestID, e.RequestID)
			}
			if got := resp.Header.Get(brokerhttp.HeaderRequestID); got != e.RequestID {
				t.Errorf("%s of the response: got %q, want %q (the one the agent got)", brokerhttp.HeaderRequestID, got, e.RequestID)
			}
			for _, k := range []string{brokerhttp.HeaderError, "Ox-Broker-Anything", "X-Forwarded-For", "Proxy-Authorization"} {
				if v, ok := e.Header[k]; ok {
					t.Errorf("the connector's %s reached the agent: %q", k, v)
				}
			}
			for k, want := range map[string]string{"Accept": "application/json", "X-Custom": "kept"} {
				if got := e.Header.Get(k); got != want {
					t.Errorf("%s at the agent: got %q, want %q", k, got, want)
				}
			}

			// Each request gets its own id.
			resp2, b2 := tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector, nil, "")
			if e2 := decodeEcho(t, resp2, b2); e2.RequestID == e.RequestID {
				t.Errorf("two requests got the same request id %s", e.RequestID)
			}
		})
	}
}

// TestAgentErrorPassesThrough: a broker error made by the agent reaches
// the connector as it is, with the gateway's request id.
func TestAgentErrorPassesThrough(t *testing.T) {
	tg := startGateway(t)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		brokerhttp.WriteError(w, brokerhttp.PathNotAllowed, "not allowed", r.Header.Get(brokerhttp.HeaderRequestID))
	}))
	resp, b := tg.call(t, "GET", "/b/acme/jira/rest/api/3/user", tg.acmeConnector, nil, "")
	body := brokerError(t, resp, b, http.StatusForbidden, brokerhttp.PathNotAllowed)
	if id := resp.Header.Get(brokerhttp.HeaderRequestID); id == "" || body.Error.RequestID != id {
		t.Errorf("request id: header %q, body %q; want the same, not empty", id, body.Error.RequestID)
	}
}

func TestBrokerStatus(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGateway(t)
			st := tg.status(t, "acme", tg.acmeConnector)
			if st.Broker != "acme" || st.Online || st.Sessions == nil || len(st.Sessions) != 0 || st.Sites == nil || len(st.Sites) != 0 {
				t.Errorf("status with no agent: got %+v, want acme offline with empty (not null) lists", st)
			}

			before := time.Now().Add(-time.Second)
			h := tg.hello()
			h.Sites = append(h.Sites,
				tunnel.SiteInfo{Name: "wiki", Type: "jira"},
				tunnel.SiteInfo{Name: "Not A Name", Type: "jira"}, // ignored
				tunnel.SiteInfo{Name: "", Type: "jira"},           // ignored
			)
			a := tg.connect(t, tr, h, echoHandler("a1"))
			st = tg.waitSessions(t, 1)
			s := st.Sessions[0]
			if !st.Online {
				t.Error("online: got false, want true")
			}
			if s.ID != a.Welcome.SessionID || s.AgentID != "agent-1" || s.Version != "1.2.3" || s.Hostname != "host-1" || s.Transport != tr {
				t.Errorf("session: got %+v, want id %s, agent-1, 1.2.3, host-1, %s", s, a.Welcome.SessionID, tr)
			}
			if s.Since.Before(before) || s.Since.After(time.Now().Add(time.Second)) {
				t.Errorf("since: got %s, want about now", s.Since)
			}
			if want := []string{"jira", "wiki"}; !slices.Equal(s.Sites, want) || !slices.Equal(st.Sites, want) {
				t.Errorf("sites: got session %v, broker %v, want %v (invalid names dropped)", s.Sites, st.Sites, want)
			}

			// A second agent with another site: the broker's sites are the union.
			h2 := tg.hello()
			h2.AgentID = "agent-2"
			h2.Sites = []tunnel.SiteInfo{{Name: "confluence", Type: "jira"}, {Name: "jira", Type: "jira"}}
			tg.connect(t, tr, h2, echoHandler("a2"))
			st = tg.waitSessions(t, 2)
			if want := []string{"confluence", "jira", "wiki"}; !slices.Equal(st.Sites, want) {
				t.Errorf("broker sites with two agents: got %v, want %v (sorted union)", st.Sites, want)
			}
			if st.Sessions[0].Since.After(st.Sessions[1].Since) {
				t.Errorf("sessions not oldest first: %+v", st.Sessions)
			}

			// The status of another broker shows nothing of acme's.
			if o := tg.status(t, "other", tg.otherConnector); len(o.Sessions) != 0 || o.Online {
				t.Errorf("status of other: got %+v, want offline", o)
			}
		})
	}
}

func TestSitesUpdate(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, a := startWithAgent(t, tr)
			if err := a.Loop.Send(tunnel.Sites{Sites: []tunnel.SiteInfo{
				{Name: "wiki", Type: "jira"}, {Name: "BAD", Type: "jira"},
			}}); err != nil {
				t.Fatal(err)
			}
			testwait.For(t, 5*time.Second, "sites become [wiki]", func() bool {
				return slices.Equal(tg.status(t, "acme", tg.acmeConnector).Sites, []string{"wiki"})
			})
			resp, b := tg.call(t, "GET", "/b/acme/wiki/rest/api/3/myself", tg.acmeConnector, nil, "")
			if e := decodeEcho(t, resp, b); e.Site != "wiki" {
				t.Errorf("site at the agent: got %q, want wiki", e.Site)
			}
			resp, b = tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector, nil, "")
			brokerError(t, resp, b, http.StatusNotFound, brokerhttp.UnknownSite)

			// An unknown control message is ignored, and the session lives on.
			if err := a.Loop.Send(tunnel.Hello{BrokerID: "acme"}); err != nil {
				t.Fatal(err)
			}
			if err := a.Loop.Send(tunnel.Sites{Sites: []tunnel.SiteInfo{{Name: "jira", Type: "jira"}}}); err != nil {
				t.Fatal(err)
			}
			testwait.For(t, 5*time.Second, "sites become [jira]", func() bool {
				return slices.Equal(tg.status(t, "acme", tg.acmeConnector).Sites, []string{"jira"})
			})
		})
	}
}

func TestAgentGoneIsOffline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, a := startWithAgent(t, tr)
			resp, b := tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
			decodeEcho(t, resp, b)

			a.Close()
			start := time.Now()
			testwait.For(t, 5*time.Second, "broker_offline after the agent left", func() bool {
				resp, _ := tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
				return resp.Header.Get(brokerhttp.HeaderError) == string(brokerhttp.BrokerOffline)
			})
			t.Logf("broker_offline %s after the agent closed its session", time.Since(start).Round(time.Millisecond))
			resp, b = tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
			brokerError(t, resp, b, http.StatusBadGateway, brokerhttp.BrokerOffline)
			tg.waitSessions(t, 0)
		})
	}
}

// TestAgentDiesMidRequest: a session that ends while a request is in
// flight answers broker_offline, not a hang.
func TestAgentDiesMidRequest(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGateway(t)
			arrived := make(chan struct{})
			var a *sessiontest.Agent
			a = tg.connect(t, tr, tg.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-r.Context().Done()
			}))
			go func() {
				<-arrived
				a.Session.Close()
			}()
			resp, b := tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
			brokerError(t, resp, b, http.StatusBadGateway, brokerhttp.BrokerOffline)
		})
	}
}

// TestAgentOpenedStreamsRefused: the gateway serves nothing on streams an
// agent opens besides the control stream, and the session lives on.
func TestAgentOpenedStreamsRefused(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, a := startWithAgent(t, tr)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			st, err := a.Session.OpenStream(ctx)
			if err == nil {
				// yamux opens without asking; QUIC allows the agent one
				// stream, the control stream, and OpenStream waits.
				defer st.Close()
				st.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(st, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
				b, err := io.ReadAll(st)
				if len(b) > 0 {
					t.Errorf("a stream the agent opened was answered: %q", b)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Error("a stream the agent opened is still open 5 s later; want it closed by the gateway")
				}
			}
			resp, b := tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
			decodeEcho(t, resp, b)
		})
	}
}

func TestErrorCodes(t *testing.T) {
	tg, _ := startWithAgent(t, tunnel.TransportTCP)

	tests := []struct {
		name       string
		path       string
		token      string
		raw        string // sent as is over TCP instead of method+path
		wantStatus int
		wantCode   brokerhttp.Code
	}{
		{name: "no token", path: "/b/acme/jira/rest/api/3/myself", wantStatus: 401, wantCode: brokerhttp.Unauthorized},
		{name: "wrong token", path: "/b/acme/jira/rest/api/3/myself", token: "oxb_wrong", wantStatus: 401, wantCode: brokerhttp.Unauthorized},
		{name: "token of another broker", path: "/b/acme/jira/rest/api/3/myself", token: tg.otherConnector, wantStatus: 401, wantCode: brokerhttp.Unauthorized},
		{name: "unknown broker", path: "/b/nosuch/jira/rest/api/3/myself", token: tg.acmeConnector, wantStatus: 404, wantCode: brokerhttp.UnknownBroker},
		{name: "unknown site", path: "/b/acme/nosite/rest/api/3/myself", token: tg.acmeConnector, wantStatus: 404, wantCode: brokerhttp.UnknownSite},
		{name: "broker offline", path: "/b/other/jira/rest/api/3/myself", token: tg.otherConnector, wantStatus: 502, wantCode: brokerhttp.BrokerOffline},
		{name: "no site and path", path: "/b/acme", token: tg.acmeConnector, wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "no path", path: "/b/acme/jira", token: tg.acmeConnector, wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "no broker", path: "/b//jira/x", token: tg.acmeConnector, wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "upper-case broker", path: "/b/ACME/jira/x", token: tg.acmeConnector, wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "encoded slash in site", path: "/b/acme/jira%2Fx/y", token: tg.acmeConnector, wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "absolute-form target", raw: "GET http://evil/b/acme/jira/rest/api/3/myself HTTP/1.1\r\nHost: evil\r\nAuthorization: Bearer " + tg.acmeConnector + "\r\n\r\n",
			wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "absolute-form to the gateway itself", raw: "GET http://" + tg.api + "/b/acme/jira/x HTTP/1.1\r\nHost: " + tg.api + "\r\nAuthorization: Bearer " + tg.acmeConnector + "\r\n\r\n",
			wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "CONNECT", raw: "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\nAuthorization: Bearer " + tg.acmeConnector + "\r\n\r\n",
			wantStatus: 400, wantCode: brokerhttp.BadRequest},
		{name: "status of an unknown broker", path: "/v1/brokers/nosuch", token: tg.acmeConnector, wantStatus: 404, wantCode: brokerhttp.UnknownBroker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				resp *http.Response
				b    []byte
			)
			if tt.raw != "" {
				resp, b = rawRequest(t, tg.api, tt.raw)
			} else {
				resp, b = tg.call(t, "GET", tt.path, tt.token, nil, "")
			}
			body := brokerError(t, resp, b, tt.wantStatus, tt.wantCode)
			if strings.HasPrefix(tt.path, "/b/") {
				if id := resp.Header.Get(brokerhttp.HeaderRequestID); id == "" || body.Error.RequestID != id {
					t.Errorf("request id: header %q, body %q; want the same, not empty", id, body.Error.RequestID)
				}
			}
			if strings.Contains(string(b), tg.acmeConnector) || strings.Contains(string(b), tg.otherConnector) {
				t.Error("the error repeats a connector token")
			}
		})
	}
}

// rawRequest writes req on a new TCP connection to addr and reads one
// response.
func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := rawhttp.Do(addr, req, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("response to %q: %v", req, err)
	}
	return resp, b
}

func TestRequestsSpreadAcrossSessions(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, _ := startWithAgent(t, tr)
			h := tg.hello()
			h.AgentID = "agent-2"
			tg.connect(t, tr, h, echoHandler("a2"))
			tg.waitSessions(t, 2)

			count := map[string]int{}
			for range 20 {
				resp, b := tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector, nil, "")
				count[decodeEcho(t, resp, b).Agent]++
			}
			if count["a1"] < 3 || count["a2"] < 3 {
				t.Errorf("requests per session: got %v, want both sessions used (at least 3 of 20 each)", count)
			}

			// Concurrent requests spread too.
			var mu sync.Mutex
			concurrent := map[string]int{}
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					resp, b, err := tg.do("GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
					var e echo
					if err == nil && resp.StatusCode == 200 {
						err = json.Unmarshal(b, &e)
					} else if err == nil {
						err = fmt.Errorf("got %d %s, want 200", resp.StatusCode, b)
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					concurrent[e.Agent]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if concurrent["a1"] == 0 || concurrent["a2"] == 0 {
				t.Errorf("concurrent requests per session: got %v, want both used", concurrent)
			}
		})
	}
}

func TestShutdownSendsGoAway(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg, a := startWithAgent(t, tr)
			tg.waitSessions(t, 1)

			stopped := make(chan error, 1)
			go func() { stopped <- tg.stop(t) }()

			if g := sessiontest.ExpectGoAway(t, a.Loop, 5*time.Second); g.Reason == "" {
				t.Fatalf("control message: got %#v, want goaway with a reason", g)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Errorf("Serve: got %v, want nil after its context ended", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return within 10 s of its context ending")
			}
			// The gateway closed the session on its way out.
			testwait.Recv(t, 5*time.Second, "the gateway to close the agent's session", a.Session.Done())
		})
	}
}

// TestShutdownDrainsInFlight: a request in flight when the gateway
// stops still gets its answer.
func TestShutdownDrainsInFlight(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGateway(t)
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			a := tg.connect(t, tr, tg.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-release
				io.WriteString(w, "finished")
			}))
			type result struct {
				resp *http.Response
				body []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, b, err := tg.do("GET", "/b/acme/jira/slow", tg.acmeConnector, nil, "")
				done <- result{resp, b, err}
			}()
			<-arrived
			stopped := make(chan error, 1)
			go func() { stopped <- tg.stop(t) }()
			testwait.Recv(t, 5*time.Second, "a goaway: the shutdown has begun", a.Loop.GoAway())
			close(release)
			select {
			case r := <-done:
				if r.err != nil {
					t.Fatalf("in-flight request: %v", r.err)
				}
				if r.resp.StatusCode != 200 || string(r.body) != "finished" {
					t.Errorf("in-flight request: got %d %q, want 200 finished", r.resp.StatusCode, r.body)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the in-flight request did not finish within 10 s")
			}
			<-stopped
		})
	}
}

// TestRegisteredBeforeWelcome: once an agent has its welcome (and reports
// itself ready), the gateway routes requests to it.
func TestRegisteredBeforeWelcome(t *testing.T) {
	tg := startGateway(t)
	offline := 0
	const rounds = 100
	for range rounds {
		a, err := tg.agent(t, tunnel.TransportTCP, tg.hello(), echoHandler("a1"))
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
		if resp.StatusCode != http.StatusOK {
			offline++
		}
		a.Close()
		tg.waitSessions(t, 0)
	}
	if offline > 0 {
		t.Errorf("requests right after welcome: got %d of %d refused (broker_offline), want none", offline, rounds)
	}
}
