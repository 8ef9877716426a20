package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// runCheck runs `oxbroker check` with args and only the environment given
// (plus PATH and HOME) and returns its exit code, stdout and stderr. Its
// output joins the run's secret scan.
func (e *env) runCheck(environ []string, args ...string) (int, string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.agent, append([]string{"check"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.t.TempDir()}, environ...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	logs.add("check", stdout.String()+stderr.String())
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		e.t.Fatalf("oxbroker check: %v", err)
	}
	return 0, stdout.String(), stderr.String()
}

// checkJSON runs `oxbroker check --json` on the config of o with the Jira
// token jiraToken and decodes the report.
func (e *env) checkJSON(o agentOpts, jiraToken string) (int, diag.Report) {
	e.t.Helper()
	cfg := e.agentConfig(o)
	code, stdout, stderr := e.runCheck([]string{"JIRA_TOKEN=" + jiraToken}, "--config", cfg, "--json")
	var rep diag.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		e.t.Fatalf("check --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if e.t.Failed() {
		e.t.Logf("report:\n%s", stdout)
	}
	return code, rep
}

// checkFindResult returns the named result of rs.
func checkFindResult(t *testing.T, rs []diag.Result, name string) diag.Result {
	t.Helper()
	i := slices.IndexFunc(rs, func(r diag.Result) bool { return r.Name == name })
	if i < 0 {
		t.Fatalf("no %s check in %+v", name, rs)
	}
	return rs[i]
}

// checkSiteResults returns the results of the named site.
func checkSiteResults(t *testing.T, rep diag.Report, site string) []diag.Result {
	t.Helper()
	for _, s := range rep.Sites {
		if s.Site == site {
			return s.Results
		}
	}
	t.Fatalf("no site %s in %+v", site, rep.Sites)
	return nil
}

// wantCheck checks status, and that cause and fix contain the given words.
func wantCheck(t *testing.T, rs []diag.Result, name, status, cause, fix string) {
	t.Helper()
	r := checkFindResult(t, rs, name)
	if r.Status != status || !strings.Contains(r.Cause, cause) || !strings.Contains(r.Fix, fix) {
		t.Errorf("%s: got %+v, want status %s, cause with %q, fix with %q", name, r, status, cause, fix)
	}
}

// useSubtest makes t, a subtest, the test e reports to until t ends.
func (e *env) useSubtest(t *testing.T) {
	parent := e.t
	e.t = t
	t.Cleanup(func() { e.t = parent })
}

func TestCheckCommand(t *testing.T) {
	e := newEnv(t)
	e.startGateway()

	t.Run("all pass", func(t *testing.T) {
		e.useSubtest(t)
		code, rep := e.checkJSON(agentOpts{transport: "auto"}, e.JiraToken)
		if code != 0 || !rep.OK {
			t.Errorf("exit %d, ok %v; want 0 and true", code, rep.OK)
		}
		wantCheck(t, rep.Gateway, "auth", diag.StatusPass, "", "")
		wantCheck(t, checkSiteResults(t, rep, "jira"), "credentials", diag.StatusPass, "", "")
		wantCheck(t, checkSiteResults(t, rep, "jira"), "permissions", diag.StatusPass, "", "")
	})

	t.Run("wrong Jira token", func(t *testing.T) {
		e.useSubtest(t)
		code, rep := e.checkJSON(agentOpts{transport: "tcp"}, "not-the-jira-token")
		if code != 1 || rep.OK {
			t.Errorf("exit %d, ok %v; want 1 and false", code, rep.OK)
		}
		wantCheck(t, checkSiteResults(t, rep, "jira"), "credentials", diag.StatusFail, "401", "auth.token")
		wantCheck(t, checkSiteResults(t, rep, "jira"), "permissions", diag.StatusSkip, "", "")
		wantCheck(t, rep.Gateway, "auth", diag.StatusPass, "", "")
	})

	t.Run("self-signed Jira", func(t *testing.T) {
		e.useSubtest(t)
		srv := httptest.NewTLSServer(e.Jira)
		t.Cleanup(srv.Close)
		ca := e.writeFile("jira-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
		plainURL := e.JiraURL
		e.JiraURL = srv.URL
		t.Cleanup(func() { e.JiraURL = plainURL })
		// A second site trusts the stand-in's certificate through tls.ca_file.
		extra := fmt.Sprintf("  - name: jira-ca\n    url: %s\n    auth:\n      type: bearer\n      token: ${JIRA_TOKEN}\n    tls:\n      ca_file: %s\n", srv.URL, ca)
		code, rep := e.checkJSON(agentOpts{transport: "tcp", extraSites: extra}, e.JiraToken)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantCheck(t, checkSiteResults(t, rep, "jira"), "tls", diag.StatusFail, "unknown authority", "tls.ca_file")
		wantCheck(t, checkSiteResults(t, rep, "jira"), "credentials", diag.StatusSkip, "", "")
		wantCheck(t, checkSiteResults(t, rep, "jira-ca"), "tls", diag.StatusPass, "", "")
		wantCheck(t, checkSiteResults(t, rep, "jira-ca"), "credentials", diag.StatusPass, "", "")
	})

	t.Run("wrong broker token", func(t *testing.T) {
		e.useSubtest(t)
		code, rep := e.checkJSON(agentOpts{transport: "auto", brokerToken: "not-the-broker-token"}, e.JiraToken)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantCheck(t, rep.Gateway, "auth", diag.StatusFail, `refused broker id "acme" or its token`, "broker.token")
		wantCheck(t, rep.Gateway, "tls", diag.StatusPass, "", "")
	})

	t.Run("table", func(t *testing.T) {
		e.useSubtest(t)
		cfg := e.agentConfig(agentOpts{transport: "tcp"})
		code, stdout, _ := e.runCheck([]string{"JIRA_TOKEN=not-the-jira-token"}, "--config", cfg)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, want := range []string{"Gateway " + e.tunnelAddr, "✓ auth", "Site jira", "✗ credentials", "cause: Jira refused the token (401",
			"fix:   Check auth.token", "- permissions", "1 check failed"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, stdout)
			}
		}
	})
}

func TestCheckGatewayUnreachable(t *testing.T) {
	e := newEnv(t) // no gateway: nothing listens on e.tunnelAddr
	code, rep := e.checkJSON(agentOpts{transport: "auto"}, e.JiraToken)
	if code != 1 || rep.OK {
		t.Errorf("exit %d, ok %v; want 1 and false", code, rep.OK)
	}
	wantCheck(t, rep.Gateway, "tcp", diag.StatusFail, "Connection refused", "gateway.address")
	for _, n := range []string{"tls", "quic", "auth"} {
		wantCheck(t, rep.Gateway, n, diag.StatusSkip, "", "")
	}
	wantCheck(t, checkSiteResults(t, rep, "jira"), "credentials", diag.StatusPass, "", "")
}

// TestCheckRefusesServiceAccountOnSite: validation comes first, and says
// why a service-account token cannot go to <site>.atlassian.net.
func TestCheckRefusesServiceAccountOnSite(t *testing.T) {
	e := newEnv(t)
	cfg := e.writeFile("agent.yaml", fmt.Sprintf(`broker:
  id: acme
  token: x
state_dir: %s
gateway:
  address: %s
sites:
  - name: jira
    url: https://acme.atlassian.net
    auth:
      type: service_account
      token: ${JIRA_TOKEN}
`, e.t.TempDir(), e.tunnelAddr))
	code, stdout, stderr := e.runCheck([]string{"JIRA_TOKEN=" + e.JiraToken}, "--config", cfg, "--json")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout: got %q, want nothing (no check runs on an invalid config)", stdout)
	}
	want := "sites[0].url: service-account tokens work only through https://api.atlassian.com/ex/jira/<cloudId>"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
}

// TestRemoteCheck: the gateway's check endpoint returns the agent's report.
func TestRemoteCheck(t *testing.T) {
	e := newEnv(t)
	e.startGateway()

	resp, b := e.call("POST", "/v1/brokers/acme/sites/jira/check", e.ConnectorToken, "")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.BrokerOffline) {
		t.Errorf("before the agent: got %d %s, want 502 broker_offline", resp.StatusCode, b)
	}

	e.startAgent(agentOpts{transport: "quic", connections: 1})
	e.waitSessions(1, "quic", 10*time.Second)

	resp, b = e.call("POST", "/v1/brokers/acme/sites/jira/check", e.ConnectorToken, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check: got %d %s, want 200", resp.StatusCode, b)
	}
	var sr diag.SiteReport
	if err := json.Unmarshal(b, &sr); err != nil {
		t.Fatalf("check: %v in %s", err, b)
	}
	if sr.Site != "jira" || !sr.OK {
		t.Errorf("report: %s", b)
	}
	wantCheck(t, sr.Results, "credentials", diag.StatusPass, "", "")
	wantCheck(t, sr.Results, "permissions", diag.StatusPass, "", "")
	for _, tok := range []string{e.JiraToken, e.BrokerToken, e.ConnectorToken} {
		if strings.Contains(string(b), tok) {
			t.Errorf("the report holds a token (%s…)", tok[:12])
		}
	}

	// The report says what is wrong when Jira refuses the token.
	e.Jira.SetStatus("/rest/api/3/myself", http.StatusUnauthorized, nil)
	resp, b = e.call("POST", "/v1/brokers/acme/sites/jira/check", e.ConnectorToken, "")
	e.Jira.SetStatus("/rest/api/3/myself", 0, nil)
	sr = diag.SiteReport{}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &sr) != nil || sr.OK {
		t.Fatalf("check with a refused token: got %d %s, want 200 and a failed report", resp.StatusCode, b)
	}
	wantCheck(t, sr.Results, "credentials", diag.StatusFail, "401", "auth.token")

	resp, b = e.call("POST", "/v1/brokers/acme/sites/nosite/check", e.ConnectorToken, "")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.UnknownSite) {
		t.Errorf("unknown site: got %d %s, want 404 unknown_site", resp.StatusCode, b)
	}
	resp, b = e.call("POST", "/v1/brokers/acme/sites/jira/check", "", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: got %d %s, want 401", resp.StatusCode, b)
	}
}
