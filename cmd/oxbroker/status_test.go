package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"

	"github.com/oxsecurity/oxbroker/admin"
	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// TestServiceStatusNotConnected: with the service running (the fake
// service manager says so) and a real agent that cannot reach its gateway
// (nothing listens there), `service status` reads the agent's /readyz and
// says "running, not connected" with the cause and the fix that `oxbroker
// check` would give, and exits 1: a script's "status || alert" alerts.
func TestServiceStatusNotConnected(t *testing.T) {
	closed := tunneltest.ClosedAddr(t)
	jira := httptest.NewServer(jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: "jira-tok"}}}))
	defer jira.Close()
	yaml := fmt.Sprintf(`broker: {id: acme, token: b}
state_dir: %q
gateway: {address: %q, transport: tcp, connections: 1}
sites:
  - name: jira
    url: %s
    auth: {type: bearer, token: jira-tok}
`, filepath.Join(t.TempDir(), "state"), closed, jira.URL)
	cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	reg := admin.NewRegistry()
	a, err := agent.New(context.Background(), cfg, agent.Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Listen("127.0.0.1:0", admin.Handler(reg, a.Readiness), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	fh := &fakeHost{svc: &fakeService{status: service.StatusRunning}}
	want := "installed: yes\nrunning, not connected: Connection refused: nothing listens on " + closed +
		", or a firewall rejects the connection. Fix: Check gateway.address (the host:port OX gave you) and that the firewall allows outbound TCP to it.\n"
	var out, stderr string
	var code int
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, stderr, code = runService(t, fh.host(), "status", "--admin", srv.Addr().String())
		if out == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out != want || code != cli.ExitFailed {
		t.Errorf("got %q exit %d (stderr %q)\nwant %q exit 1", out, code, stderr, want)
	}
}

// TestParseReadyz: each answer of the agent's /readyz becomes the status
// line, the sites' lines and whether the agent is connected.
func TestParseReadyz(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		line      string
		sites     []string
		connected bool
	}{
		{"ready", 200, "ready\n", "connected", nil, true},
		{"ready, a site unhealthy", 200, "ready\nsite jira: unhealthy: Jira refused the token (401 Unauthorized). Fix: Check auth.token.\n",
			"connected", []string{"site jira: unhealthy: Jira refused the token (401 Unauthorized). Fix: Check auth.token."}, true},
		{"no tunnel, cause known", 503, "not ready: no tunnel to the gateway is up: The gateway refused broker id \"acme\" or its token. Fix: Check broker.id.\n",
			"not connected: The gateway refused broker id \"acme\" or its token. Fix: Check broker.id.", nil, false},
		{"no tunnel yet", 503, "not ready: no tunnel to the gateway is up\n", "not connected: no tunnel to the gateway is up yet", nil, false},
		{"every site down", 503, "not ready: site jira: the Cloud ID of acme cannot be read\n", "not ready: site jira: the Cloud ID of acme cannot be read", nil, true},
		{"a terminal escape from whoever answers", 200, "ready\nsite x: \x1b]0;owned\x07\n", "connected", []string{"site x:  ]0;owned "}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseReadyz(tc.status, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if st.line != tc.line || st.connected != tc.connected || strings.Join(st.sites, "|") != strings.Join(tc.sites, "|") {
				t.Errorf("got %+v, want line %q, sites %q, connected %v", st, tc.line, tc.sites, tc.connected)
			}
		})
	}
	if _, err := parseReadyz(http.StatusNotFound, "404 page not found\n"); err == nil {
		t.Error("a 404 from something else: got no error")
	}
}
