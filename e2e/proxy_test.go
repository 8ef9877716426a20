package e2e

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/rawhttp"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

// rawCall sends raw request bytes to the connector API and returns the
// status line's code and the Ox-Broker-Error header.
func rawCall(t *testing.T, e *env, raw string) (int, string) {
	t.Helper()
	resp, _, err := rawhttp.Do(e.apiAddr, raw, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("response to %q: %v", raw, err)
	}
	return resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError)
}

// TestProxyThroughTunnel drives the agent's proxy through the real tunnel
// and processes: path attacks, limits, upstream TLS and Cloud ID
// discovery, each answered with the contract's code, and nothing refused
// reaching Jira.
func TestProxyThroughTunnel(t *testing.T) {
	e := newEnv(t)
	e.startGateway()

	// An HTTPS Jira with a self-signed certificate, and its certificate
	// as a CA file.
	tlsJira := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: "Bearer", Token: e.JiraToken}}})
	tlsSrv := httptest.NewTLSServer(tlsJira)
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(e.Dir, "jira-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	site := func(name, extra string) string {
		return fmt.Sprintf("  - name: %s\n%s    auth:\n      type: bearer\n      token: ${JIRA_TOKEN}\n", name, extra)
	}
	sites := site("small", fmt.Sprintf("    url: %s\n    max_body: 1KiB\n    timeout: 1s\n", e.JiraURL)) +
		site("tls", fmt.Sprintf("    url: %s\n", tlsSrv.URL)) +
		site("tlsca", fmt.Sprintf("    url: %s\n    tls:\n      ca_file: %s\n", tlsSrv.URL, caFile)) +
		site("tlsskip", fmt.Sprintf("    url: %s\n    tls:\n      insecure_skip_verify: true\n", tlsSrv.URL)) +
		fmt.Sprintf("  - name: cloud\n    cloud_site: %s\n    atlassian_api: %s\n    auth:\n      type: service_account\n      token: ${JIRA_TOKEN}\n",
			e.JiraURL, e.JiraURL)
	a := e.startAgent(agentOpts{transport: "tcp", extraSites: sites})
	e.waitSessions(2, "tcp", 15*time.Second)
	e.Jira.Reset()

	call := func(siteName, method, path, body string) (*http.Response, []byte) {
		return e.call(method, "/b/acme/"+siteName+path, e.ConnectorToken, body)
	}
	want := func(name string, resp *http.Response, b []byte, status int, code brokerhttp.Code) {
		t.Helper()
		if resp.StatusCode != status || resp.Header.Get(brokerhttp.HeaderError) != string(code) {
			t.Errorf("%s: got %d %q %s, want %d %q", name, resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError), b, status, code)
		}
	}

	// Traversal and smuggling attempts, sent as raw bytes so no client
	// cleans them first.
	auth := "Authorization: Bearer " + e.ConnectorToken + "\r\n"
	for _, target := range []string{
		"/b/acme/jira/rest/api/3/issue/../../../secure/admin",
		"/b/acme/jira/rest/api/3/%2e%2e/%2e%2e/secure/admin",
		"/b/acme/jira/rest/api/3/issue/A%2fB",
		"/b/acme/jira//rest/api/3/myself",
		"/b/acme/jira/rest/api/3/./myself",
		"/b/acme/jira/rest/api/3/issue/ABC-1%00",
		"/b/acme/jira/rest/api/3/issue/..%5c..%5csecure",
		"/b/acme/jira/rest/api/3/issue/%252e%252e/x",
	} {
		code, ebc := rawCall(t, e, "GET "+target+" HTTP/1.1\r\nHost: gw\r\n"+auth+"Connection: close\r\n\r\n")
		if code != 400 || ebc != string(brokerhttp.BadRequest) {
			t.Errorf("GET %s: got %d %q, want 400 bad_request", target, code, ebc)
		}
	}
	if code, _ := rawCall(t, e, "GET http://jira.evil/b/acme/jira/rest/api/3/myself HTTP/1.1\r\nHost: jira.evil\r\n"+auth+"Connection: close\r\n\r\n"); code != 400 {
		t.Errorf("absolute-form target: got %d, want 400", code)
	}
	// Default-deny allowlist: admin APIs and non-API paths.
	for _, p := range []struct{ method, path string }{
		{"POST", "/rest/api/3/user"}, {"GET", "/rest/api/3/auditing/record"},
		{"GET", "/secure/admin/ViewApplicationProperties.jspa"}, {"GET", "/plugins/servlet/oauth/consumers"},
	} {
		resp, b := call("small", p.method, p.path, "")
		want(p.method+" "+p.path, resp, b, 403, brokerhttp.PathNotAllowed)
	}
	if n := len(e.Jira.Requests()); n != 0 {
		t.Fatalf("refused requests reached Jira: %d", n)
	}

	// Limits: body over max_body, a Jira slower than timeout.
	big := `{"fields":{"summary":"` + strings.Repeat("x", 2048) + `"}}`
	resp, b := call("small", "POST", "/rest/api/3/issue", big)
	want("oversize body", resp, b, 413, brokerhttp.TooLarge)
	if n := len(e.Jira.Requests()); n != 0 {
		t.Fatalf("an oversize body reached Jira")
	}
	e.Jira.SetDelay(3 * time.Second)
	resp, b = call("small", "GET", "/rest/api/3/myself", "")
	want("slow Jira", resp, b, 504, brokerhttp.UpstreamTimeout)
	e.Jira.SetDelay(0)

	// Upstream TLS: unknown authority without ca_file, fine with it or
	// with verification off.
	resp, b = call("tls", "GET", "/rest/api/3/myself", "")
	want("self-signed Jira without ca_file", resp, b, 502, brokerhttp.UpstreamTLS)
	if !strings.Contains(string(b), "tls.ca_file") {
		t.Errorf("upstream_tls message does not suggest tls.ca_file: %s", b)
	}
	for _, s := range []string{"tlsca", "tlsskip"} {
		if resp, b := call(s, "GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
			t.Errorf("site %s: got %d %s, want 200", s, resp.StatusCode, b)
		}
	}
	if !strings.Contains(a.out.String(), "insecure_skip_verify") && !strings.Contains(a.out.String(), "verification") {
		t.Errorf("the agent did not warn that TLS verification is off for tlsskip")
	}

	// cloud_site: the Cloud ID came from tenant_info (sent with no
	// credentials) and calls go to <atlassian_api>/ex/jira/<cloudId>.
	e.Jira.Reset()
	resp, b = call("cloud", "POST", "/rest/api/3/search/jql", `{"jql":"project = OX"}`)
	if resp.StatusCode >= 500 || resp.StatusCode == 401 {
		t.Fatalf("cloud site: %d %s", resp.StatusCode, b)
	}
	reqs := e.Jira.Requests()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].Path, "/ex/jira/"+e.Jira.CloudID()+"/rest/api/3/search/jql") {
		t.Fatalf("cloud site: Jira saw %+v, want one call under /ex/jira/%s", reqs, e.Jira.CloudID())
	}
	if !strings.Contains(a.out.String(), e.Jira.CloudID()) {
		t.Errorf("the agent did not log the resolved Cloud ID")
	}
}
