package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls url until it answers want.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) string {
	t.Helper()
	var code int
	var body string
	if _, ok := testwait.Until(timeout, func() bool { code, body = httpGet(t, url); return code == want }); !ok {
		t.Fatalf("%s: got %d %q, want %d within %s", url, code, body, want, timeout)
	}
	return body
}

// TestAdminEndpoints: both programs serve /healthz, /readyz and /metrics
// with the contract's metric names; the agent's /readyz is 503 while no
// tunnel is up and comes back when the gateway does.
func TestAdminEndpoints(t *testing.T) {
	agentAdmin := freeAddr(t)
	e, gw, _ := newEnvUp(t, agentOpts{transport: "quic", admin: agentAdmin})
	if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
		t.Fatalf("call: %d %s", resp.StatusCode, b)
	}
	e.jiraCall("POST", "/rest/api/3/user", "{}") // denied

	agent := "http://" + agentAdmin
	gateway := "http://" + e.adminAddr
	for _, u := range []string{agent + "/healthz", agent + "/readyz", gateway + "/healthz", gateway + "/readyz"} {
		if code, body := httpGet(t, u); code != 200 {
			t.Fatalf("%s: got %d %q, want 200", u, code, body)
		}
	}
	_, am := httpGet(t, agent+"/metrics")
	for _, want := range []string{
		`oxbroker_tunnel_connections{transport="quic"} 2`,
		`oxbroker_requests_total{code="200",site="jira"} 1`,
		`oxbroker_requests_total{code="403",site="jira"} 1`,
		`oxbroker_requests_denied_total{site="jira"} 1`,
		`oxbroker_request_duration_seconds_count{site="jira"} 2`,
		"oxbroker_tunnel_reconnects_total 0",
		"go_goroutines",
	} {
		if !strings.Contains(am, want) {
			t.Errorf("agent /metrics lacks %q", want)
		}
	}
	_, gm := httpGet(t, gateway+"/metrics")
	for _, want := range []string{
		`oxbroker_gateway_sessions{transport="quic"} 2`,
		`oxbroker_gateway_requests_total{broker="acme",code="200"} 1`,
		"oxbroker_gateway_request_duration_seconds_count",
		"oxbroker_gateway_auth_failures_total 0",
		`oxbroker_gateway_auth_rate_limited_total{listener="api"} 0`,
	} {
		if !strings.Contains(gm, want) {
			t.Errorf("gateway /metrics lacks %q", want)
		}
	}

	gw.stop(t)
	body := waitStatus(t, agent+"/readyz", 503, 15*time.Second)
	if !strings.Contains(body, "no tunnel") {
		t.Errorf("/readyz body %q does not say why", body)
	}
	e.startGateway()
	waitStatus(t, agent+"/readyz", 200, 40*time.Second)
}
