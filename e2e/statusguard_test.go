package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
)

// TestStatusPageCrossSite: a web page of another origin, open in the
// administrator's browser, cannot make the agent run its check: neither a
// form posted to the page's API nor a script (its custom header needs a
// CORS preflight the agent never allows). And a request under a name that
// is not the agent's (DNS rebinding) gets nothing.
func TestStatusPageCrossSite(t *testing.T) {
	b := newBrowser(t)
	agentAdmin := freeAddr(t)
	_, _, agent := newEnvUp(t, agentOpts{transport: "tcp", admin: agentAdmin})
	target := "http://" + agentAdmin + "/api/check"

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title>
<form id="f" method="post" action=%q></form>
<script>
window.fetched = "pending";
fetch(%q, {method: "POST", headers: {"X-Oxbroker-Request": "check"}})
  .then(r => { window.fetched = "answered " + r.status; })
  .catch(e => { window.fetched = "blocked"; })
  .finally(() => { if (location.hash != "#noform") document.getElementById("f").submit(); });
</script>`, target, target)
	}))
	t.Cleanup(evil.Close)

	b.do(chromedp.Navigate(evil.URL + "/#noform"))
	b.waitFor("the script's fetch to end", `window.fetched != "pending"`, 10*time.Second)
	if got := eval[string](b, `window.fetched`); got != "blocked" {
		t.Errorf("a cross-origin fetch with the header: %s, want blocked by CORS", got)
	}
	b.do(chromedp.Navigate(evil.URL + "/"))
	b.waitFor("the form's answer", `location.href.startsWith("http://`+agentAdmin+`")`, 10*time.Second)
	if body := eval[string](b, `document.body.innerText`); !strings.Contains(body, "cross-site request refused") &&
		!strings.Contains(body, "must carry the X-Oxbroker-Request header") {
		t.Errorf("a cross-site form POST: the agent answered %q", body)
	}

	// Neither ran the check: the page has no check, the log no run.
	var st struct {
		Check *struct{} `json:"check"`
	}
	getJSON(t, "http://"+agentAdmin+"/api/status", &st)
	if st.Check != nil || strings.Contains(agent.out.String(), "check run from the status page") {
		t.Error("a cross-site request ran the check")
	}

	// DNS rebinding: the attacker's name, resolved to 127.0.0.1.
	req, _ := http.NewRequest("GET", "http://"+agentAdmin+"/api/status", nil)
	req.Host = "rebind.evil.example:" + strings.Split(agentAdmin, ":")[1]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/status as rebind.evil.example: got %d, want 421", resp.StatusCode)
	}
}

// TestStatusPageAuth: off loopback, both programs refuse to start with a
// status page but no admin.auth; with admin.auth, the agent's page and API
// need the token, and /healthz, /readyz and /metrics stay open.
func TestStatusPageAuth(t *testing.T) {
	e := newEnv(t)
	port := strings.Split(freeAddr(t), ":")[1]
	// Refused before binding: nothing listens on every address.
	open := e.agentConfig(agentOpts{transport: "quic", admin: "0.0.0.0:" + port})
	out, err := runBin(t, bins.agent, "run", "--config", open)
	if err == nil || !strings.Contains(out, "admin.listen: 0.0.0.0:"+port+" is not a loopback address") {
		t.Errorf("agent with a status page on 0.0.0.0 and no admin.auth: %v\n%s", err, out)
	}
	gwCfg := e.writeFile("gateway-open.yaml", e.gatewayYAML(gatewayyaml.Config{Tunnel: e.tunnelAddr, API: e.apiAddr, Admin: "0.0.0.0:" + port}))
	out, err = runBin(t, bins.gateway, "run", "--config", gwCfg)
	if err == nil || !strings.Contains(out, "listen.admin: 0.0.0.0:"+port+" is not a loopback address") {
		t.Errorf("gateway with a status page on 0.0.0.0 and no admin.auth: %v\n%s", err, out)
	}

	e.startGateway()
	adminToken := randomToken("admin-tok-")
	tokenFile := e.writeFile("admin.token", adminToken+"\n")
	agentAdmin := freeAddr(t)
	cfg := e.agentConfig(agentOpts{transport: "quic", admin: agentAdmin})
	appendFile(t, cfg, "  auth:\n    type: bearer\n    token_file: "+tokenFile+"\n")
	start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken}, "run", "--config", cfg)
	e.waitSessions(2, "quic", 15*time.Second)

	base := "http://" + agentAdmin
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/", "", 401},
		{"/api/status", "", 401},
		{"/api/status", "wrong-" + adminToken, 401},
		{"/api/status", adminToken, 200},
		{"/", adminToken, 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	} {
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s (token %v): got %d, want %d", tt.path, tt.token != "", resp.StatusCode, tt.want)
		}
	}
}

// runBin runs a binary that is expected to exit at once, and returns its
// output.
func runBin(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	p := start(t, filepath.Base(bin), bin, nil, args...)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s %v did not exit", bin, args)
	}
	if !p.cmd.ProcessState.Success() {
		return p.out.String(), fmt.Errorf("exit %d", p.cmd.ProcessState.ExitCode())
	}
	return p.out.String(), nil
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
