// Package e2e runs the built binaries as processes on loopback: a gateway,
// agents, and a Jira stand-in, with real QUIC and TLS+yamux tunnels.
package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var transports = []string{"quic", "tcp"}

// TestJiraThroughTunnel creates, reads, searches and comments on an issue
// through /b/{broker}/{site}/..., over each transport, and checks what the
// Jira stand-in saw: the site's credentials, never the connector token.
func TestJiraThroughTunnel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e, _, _ := newEnvUp(t, agentOpts{transport: tr})
			st := e.brokerStatus()
			if len(st.Sites) != 1 || st.Sites[0] != "jira" {
				t.Fatalf("broker sites: got %v, want [jira]", st.Sites)
			}

			resp, b := e.jiraCall("POST", "/rest/api/3/issue",
				`{"fields":{"project":{"key":"OX"},"summary":"Broker smoke test","issuetype":{"name":"Bug"}}}`)
			if resp.StatusCode != 201 {
				t.Fatalf("create issue: %d %s", resp.StatusCode, b)
			}
			var created struct{ Key string }
			json.Unmarshal(b, &created)
			if created.Key != "OX-1" {
				t.Fatalf("created key: got %q, want OX-1", created.Key)
			}
			if resp.Header.Get(brokerhttp.HeaderRequestID) == "" {
				t.Error("response has no Ox-Broker-Request-Id")
			}

			resp, b = e.jiraCall("GET", "/rest/api/3/issue/OX-1", "")
			if resp.StatusCode != 200 || !strings.Contains(string(b), "Broker smoke test") {
				t.Fatalf("get issue: %d %s", resp.StatusCode, b)
			}
			resp, b = e.jiraCall("GET", "/rest/api/2/issue/OX-1", "")
			if resp.StatusCode != 200 {
				t.Fatalf("get issue v2: %d %s", resp.StatusCode, b)
			}
			resp, b = e.jiraCall("GET", "/rest/api/3/search/jql?jql=project%20%3D%20OX", "")
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"OX-1"`) {
				t.Fatalf("search: %d %s", resp.StatusCode, b)
			}
			resp, b = e.jiraCall("POST", "/rest/api/3/search/jql", `{"jql":"key = OX-1"}`)
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"OX-1"`) {
				t.Fatalf("search (POST): %d %s", resp.StatusCode, b)
			}
			// Outside the first-cut allowlist: refused by the agent, never sent.
			before := len(e.Jira.Requests())
			resp, b = e.jiraCall("POST", "/rest/api/3/user", `{}`)
			if resp.StatusCode != 403 || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.PathNotAllowed) {
				t.Fatalf("create user: got %d %s, want 403 path_not_allowed", resp.StatusCode, b)
			}
			if got := len(e.Jira.Requests()); got != before {
				t.Fatalf("a refused call reached Jira: %d requests, want %d", got, before)
			}

			reqs := e.Jira.Requests()
			if len(reqs) < 5 {
				t.Fatalf("Jira saw %d requests, want at least 5", len(reqs))
			}
			e.checkJiraSaw(t, reqs)
		})
	}
}

func TestWrongConnectorToken(t *testing.T) {
	e, _, _ := newEnvUp(t, agentOpts{transport: "tcp"})
	for _, tok := range []string{"", "wrong", e.BrokerToken} {
		resp, b := e.call("GET", "/b/acme/jira/rest/api/3/myself", tok, "")
		if resp.StatusCode != 401 || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.Unauthorized) {
			t.Fatalf("token %q: got %d %s, want 401 unauthorized", tok, resp.StatusCode, b)
		}
	}
	// Unknown broker with a valid token: 404; without one: 401 (no probing).
	if resp, b := e.call("GET", "/b/nope/jira/rest/api/3/myself", e.ConnectorToken, ""); resp.StatusCode != 404 ||
		resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.UnknownBroker) {
		t.Fatalf("unknown broker: got %d %s, want 404 unknown_broker", resp.StatusCode, b)
	}
	if resp, _ := e.call("GET", "/b/nope/jira/rest/api/3/myself", "wrong", ""); resp.StatusCode != 401 {
		t.Fatalf("unknown broker, wrong token: got %d, want 401", resp.StatusCode)
	}
	if resp, b := e.jiraCall("GET", "/../jira/rest/api/3/myself", ""); resp.StatusCode == 200 {
		t.Fatalf("traversal got 200: %s", b)
	}
	resp, b := e.call("GET", "/b/acme/confluence/rest/api/3/myself", e.ConnectorToken, "")
	if resp.StatusCode != 404 || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.UnknownSite) {
		t.Fatalf("unknown site: got %d %s, want 404 unknown_site", resp.StatusCode, b)
	}
	if n := len(e.Jira.Requests()); n != 0 {
		t.Fatalf("Jira saw %d requests, want none", n)
	}
}

// TestAgentKilledThenRestarted: with the agent gone, calls fail fast with
// 502 broker_offline; a restarted agent serves again, with the same
// gateway process.
func TestAgentKilledThenRestarted(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e, _, a := newEnvUp(t, agentOpts{transport: tr})
			if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
				t.Fatalf("before kill: %d %s", resp.StatusCode, b)
			}
			a.kill()
			// QUIC learns of a dead peer only from its idle timeout (8 s);
			// TCP from the closed socket at once.
			took, ok := testwait.Until(20*time.Second, e.brokerOffline)
			if !ok {
				t.Fatal("20 s after kill -9: the broker is still served, want 502 broker_offline")
			}
			t.Logf("%s: broker_offline %s after kill -9", tr, took.Round(10*time.Millisecond))
			e.startAgent(agentOpts{transport: tr})
			e.waitSessions(2, tr, 15*time.Second)
			if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
				t.Fatalf("after restart: %d %s", resp.StatusCode, b)
			}
		})
	}
}

// refusedRetryIn is the agent's error line for a refused broker token,
// which says when it dials next.
var refusedRetryIn = regexp.MustCompile(`refused the broker id or token.* retry_in=([0-9.]+[a-zµ]+)`)

// TestWrongBrokerToken: the gateway rejects the agent, which says why and
// backs off to the cap instead of hammering the gateway.
func TestWrongBrokerToken(t *testing.T) {
	e := newEnv(t)
	gw := e.startGateway()
	a := e.startAgent(agentOpts{transport: "tcp", brokerToken: "not-the-token", connections: 1})
	a.waitOutput(t, "refused the broker id or token", 15*time.Second)
	// The agent says when it dials next: at the backoff's cap, 15 to 30 s.
	m := refusedRetryIn.FindStringSubmatch(a.out.String())
	if m == nil {
		t.Fatalf("no reconnect delay in the agent's output:\n%s", a.out.String())
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d < 15*time.Second {
		t.Fatalf("the agent dials again in %s after a refused token, want at least 15 s (the backoff's cap)", m[1])
	}
	if n := strings.Count(gw.out.String(), "agent authentication failed"); n != 1 {
		t.Fatalf("gateway saw %d failed authentications, want 1 (the agent must back off)", n)
	}
	if !e.brokerOffline() {
		t.Fatal("the broker is served with a refused token, want 502 broker_offline")
	}
	if strings.Contains(gw.out.String(), "not-the-token") || strings.Contains(a.out.String(), "not-the-token") {
		t.Fatal("a broker token was logged")
	}
}

// TestThroughConnectProxy runs the tunnel through a real HTTP CONNECT
// proxy with Basic authentication; a proxy forces TCP.
func TestThroughConnectProxy(t *testing.T) {
	p := tunneltest.StartConnectProxy(t, "proxyuser", "proxy-pass-123")
	e := newEnv(t)
	e.startGateway()
	a := e.startAgent(agentOpts{transport: "auto", proxy: p.URL("proxyuser", "proxy-pass-123").String()})
	e.waitSessions(2, "tcp", 15*time.Second)
	if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
		t.Fatalf("through proxy: %d %s", resp.StatusCode, b)
	}
	if got := p.Tunnels.Load(); got != 2 {
		t.Fatalf("proxy tunnels: got %d, want 2", got)
	}
	if strings.Contains(a.out.String(), "proxy-pass-123") {
		t.Fatal("the agent logged the proxy password")
	}
}

// TestGatewayNeverSeesJiraToken puts a TLS-terminating recorder between
// agent and gateway (it holds the gateway's certificate, so the agent
// trusts it) and records every plaintext byte the gateway receives from
// the agent, while the test is the connector and knows what it sent. The
// Jira token appears in none of it, nor in the gateway's output.
func TestGatewayNeverSeesJiraToken(t *testing.T) {
	e := newEnv(t)
	e.startGateway()
	rec := newRecorder(t, e)
	e.startAgent(agentOpts{transport: "tcp", address: rec.addr(), serverName: "127.0.0.1"})
	e.waitSessions(2, "tcp", 15*time.Second)

	var sent strings.Builder // every byte the connector (this test) sends
	do := func(method, path, body string) {
		sent.WriteString(method + " " + path + " " + body + " Bearer " + e.ConnectorToken)
		resp, b := e.jiraCall(method, path, body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	do("POST", "/rest/api/3/issue", `{"fields":{"project":{"key":"SEC"},"summary":"secret scan","issuetype":{"name":"Task"}}}`)
	do("GET", "/rest/api/3/issue/SEC-1", "")
	do("GET", "/rest/api/3/search/jql?jql=project%20%3D%20SEC", "")
	do("GET", "/rest/api/3/myself", "")
	do("GET", "/rest/api/3/issue/NOPE-9", "") // a Jira error body too

	got := rec.bytes()
	// The recorder really sees plaintext: the hello and Jira's answers.
	for _, want := range []string{`"type":"hello"`, `"broker_id":"acme"`, "secret scan", "SEC-1"} {
		if !strings.Contains(got, want) {
			t.Fatalf("recorder did not see %q: it would not catch a leak", want)
		}
	}
	forms := []string{e.JiraToken, base64.StdEncoding.EncodeToString([]byte(e.JiraToken)),
		base64.StdEncoding.EncodeToString([]byte(":" + e.JiraToken))}
	for _, f := range forms {
		if strings.Contains(got, f) {
			t.Fatalf("the gateway received the Jira token (%d bytes recorded)", len(got))
		}
		if strings.Contains(sent.String(), f) {
			t.Fatal("the connector sent the Jira token")
		}
		if strings.Contains(e.gw.out.String(), f) {
			t.Fatal("the gateway logged the Jira token")
		}
	}
}

// recorder is a TLS man-in-the-middle for the TCP transport, recording the
// plaintext bytes flowing from agents to the gateway.
type recorder struct {
	ln  net.Listener
	buf syncBuffer // what the agent sent
	wg  sync.WaitGroup
}

func newRecorder(t *testing.T, e *env) *recorder {
	t.Helper()
	conf := e.serverTLS(t)
	conf.NextProtos = []string{tunnel.ALPN}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	upConf := &tls.Config{RootCAs: gatewayRoots(t, e), ServerName: "127.0.0.1", NextProtos: []string{tunnel.ALPN}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := tls.Dial("tcp", e.tunnelAddr, upConf)
			if err != nil {
				c.Close()
				continue
			}
			r.wg.Add(2)
			go func() { defer r.wg.Done(); io.Copy(up, io.TeeReader(c, &r.buf)); up.Close() }()
			go func() { defer r.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) bytes() string { return r.buf.String() }
