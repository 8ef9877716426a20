package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// probeConfig is an agent config with one site, dc, at jiraURL with the
// Jira token token, whose gateway nobody answers.
func probeConfig(t *testing.T, dir, gatewayAddr, jiraURL, token string) *config.Agent {
	t.Helper()
	yaml := fmt.Sprintf(`broker: {id: acme, token: b}
state_dir: %q
gateway: {address: %q, transport: tcp, connections: 1}
sites:
  - name: dc
    url: %s
    auth: {type: bearer, token: %s}
`, filepath.Join(dir, "state"), gatewayAddr, jiraURL, token)
	cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestReloadKeepsSiteWhoseNewTokenFails: a reload with a Jira token that
// Jira refuses does not take the site offline: the site keeps serving with
// its previous token, and the log says why, with the check's cause and
// fix. A token Jira accepts is taken.
func TestReloadKeepsSiteWhoseNewTokenFails(t *testing.T) {
	js := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{
		{Scheme: jiratest.SchemeBearer, Token: "jira-old"}, {Scheme: jiratest.SchemeBearer, Token: "jira-new"}}})
	jira := httptest.NewServer(js)
	defer jira.Close()
	dir, gw := t.TempDir(), tunneltest.ClosedAddr(t)
	logs := &syncBuffer{}
	a, err := New(context.Background(), probeConfig(t, dir, gw, jira.URL, "jira-old"), Options{Logger: newLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.router.Load().close() }()
	lastToken := func() string {
		reqs := js.Requests()
		return reqs[len(reqs)-1].Header.Get("Authorization")
	}

	if err := a.Reload(context.Background(), probeConfig(t, dir, gw, jira.URL, "jira-wrong")); err != nil {
		t.Fatal(err)
	}
	if code, _, body := siteCall(t, a, "dc", "/rest/api/3/myself"); code != http.StatusOK || lastToken() != "Bearer jira-old" {
		t.Errorf("after a reload to a refused token: got %d %s with %q, want 200 with the previous token", code, body, lastToken())
	}
	for _, want := range []string{`msg="the site's reloaded settings fail their check; it keeps serving with its previous settings"`,
		`site=dc`, `cause="Jira refused the token (401 Unauthorized)."`, `fix="Check auth.token: bearer needs a Jira personal access token`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if ok, why := a.Readiness(); strings.Contains(why, "unhealthy") {
		t.Errorf("readiness: got %v %q, want the site healthy on its previous settings", ok, why)
	}

	if err := a.Reload(context.Background(), probeConfig(t, dir, gw, jira.URL, "jira-new")); err != nil {
		t.Fatal(err)
	}
	if code, _, body := siteCall(t, a, "dc", "/rest/api/3/myself"); code != http.StatusOK || lastToken() != "Bearer jira-new" {
		t.Errorf("after a reload to an accepted token: got %d %s with %q, want 200 with the new token", code, body, lastToken())
	}
}

// TestRefusalsInRowProbeTheSite: a site that passed its probe at start
// and whose Jira then refuses calls in a row is probed again; /readyz
// names it with the cause and the fix, and a call Jira answers makes it
// healthy again.
func TestRefusalsInRowProbeTheSite(t *testing.T) {
	saved := refusalProbeGap
	refusalProbeGap = 0
	t.Cleanup(func() { refusalProbeGap = saved })
	js := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: "jira-tok"}}})
	jira := httptest.NewServer(js)
	defer jira.Close()
	logs := &syncBuffer{}
	a, err := New(context.Background(), probeConfig(t, t.TempDir(), tunneltest.ClosedAddr(t), jira.URL, "jira-tok"), Options{Logger: newLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testwait.For(t, 5*time.Second, "the probe at start", func() bool { return js.Probes() > 0 })
	testwait.For(t, 5*time.Second, "the site checked", func() bool { return strings.Contains(logs.String(), "site checked") })

	// The account loses its access: Jira answers 401 to everything.
	js.SetStatus("/rest/api/3/myself", http.StatusUnauthorized, nil)
	js.SetStatus("/rest/api/3/issue/OX-1", http.StatusUnauthorized, nil)
	for range refusalsInRow {
		if code, _, _ := siteCall(t, a, "dc", "/rest/api/3/issue/OX-1"); code != http.StatusUnauthorized {
			t.Fatalf("call: got %d, want Jira's 401", code)
		}
	}
	want := "site dc: unhealthy: Jira refused the token (401 Unauthorized). Fix: Check auth.token"
	testwait.For(t, 5*time.Second, "readiness naming the site", func() bool { _, why := a.Readiness(); return strings.Contains(why, want) })

	js.SetStatus("/rest/api/3/myself", 0, nil)
	js.SetStatus("/rest/api/3/issue/OX-1", 0, nil)
	if code, _, body := siteCall(t, a, "dc", "/rest/api/3/myself"); code != http.StatusOK {
		t.Fatalf("call: got %d %s", code, body)
	}
	if _, why := a.Readiness(); strings.Contains(why, "unhealthy") {
		t.Errorf("readiness after Jira answered: got %q, want the site healthy", why)
	}
}
