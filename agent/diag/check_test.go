package diag_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// checkProxyPassword is the password of the test CONNECT proxies.
const checkProxyPassword = "proxy-pw-0451"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkOptions hands o the agent's own dialer and Cloud ID discovery, as
// oxbroker check does.
func checkOptions(o diag.Options) diag.Options {
	o.Dialer, o.CloudID = agent.NewDialer, agent.DiscoverCloudID
	return o
}

// checkGW is a real gateway on loopback serving broker "acme".
type checkGW struct {
	addr           string // tunnel, TCP and UDP
	api            string
	caFile         string
	brokerToken    string
	connectorToken string
}

func startCheckGateway(t *testing.T) *checkGW {
	t.Helper()
	dir := t.TempDir()
	files, err := devcert.WriteFiles(dir, "gateway", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cg := &checkGW{caFile: files.CACert, brokerToken: gateway.NewToken(), connectorToken: gateway.NewToken()}
	cfg := &config.Gateway{
		Listen:   config.GatewayListen{Tunnel: "127.0.0.1:0", API: "127.0.0.1:0"},
		TLS:      config.GatewayTLS{CertFile: files.Cert, KeyFile: files.Key},
		Brokers:  []config.BrokerEntry{{ID: "acme", Token: gateway.HashToken(cg.brokerToken), ConnectorTokens: []string{gateway.HashToken(cg.connectorToken)}}},
		Registry: config.Registry{Type: config.RegistryMemory},
		Log:      config.Log{Level: "info", Format: "text"},
	}
	gw, err := gateway.New(cfg, gateway.Options{Version: "gw-test", DrainTimeout: 2 * time.Second, GoAwayGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	cg.addr, cg.api = gw.TunnelAddr().String(), gw.APIAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); gw.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return cg
}

// checkJira is a Jira stand-in accepting one bearer token.
type checkJira struct {
	*jiratest.Server
	url   string
	token string
	srv   *httptest.Server
}

func startCheckJira(t *testing.T, tlsServer bool, opts jiratest.Options) *checkJira {
	t.Helper()
	cj := &checkJira{token: "jira-" + gateway.NewToken()}
	opts.Credentials = append(opts.Credentials, jiratest.Credential{Scheme: jiratest.SchemeBearer, Token: cj.token})
	cj.Server = jiratest.New(opts)
	if tlsServer {
		cj.srv = httptest.NewTLSServer(cj.Server)
	} else {
		cj.srv = httptest.NewServer(cj.Server)
	}
	t.Cleanup(cj.srv.Close)
	cj.url = cj.srv.URL
	return cj
}

// caFile writes the TLS stand-in's certificate as a CA bundle.
func (cj *checkJira) caFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jira-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cj.srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkConfig parses an agent config for the gateway and Jira; extra is
// appended to the site's YAML (indented as its keys), gw to gateway's.
func checkConfig(t *testing.T, cg *checkGW, cj *checkJira, gw, extra string) *config.Agent {
	t.Helper()
	addr, brokerToken, ca := "127.0.0.1:1", "x", ""
	if cg != nil {
		addr, brokerToken, ca = cg.addr, cg.brokerToken, cg.caFile
	}
	y := fmt.Sprintf(`broker:
  id: acme
  token: %s
state_dir: %s
gateway:
  address: %s
  ca_file: %q
%ssites:
  - name: jira
    url: %s
    auth:
      type: bearer
      token: %s
%s`, brokerToken, t.TempDir(), addr, ca, checkIndent(gw, "  "), cj.url, cj.token, checkIndent(extra, "    "))
	cfg, err := config.ParseAgent([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y, err)
	}
	return cfg
}

func checkIndent(s, by string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// result returns the named result, failing the test if there is none.
func checkResult(t *testing.T, rs []diag.Result, name string) diag.Result {
	t.Helper()
	i := slices.IndexFunc(rs, func(r diag.Result) bool { return r.Name == name })
	if i < 0 {
		t.Fatalf("no %s check in %+v", name, rs)
	}
	return rs[i]
}

func checkNames(rs []diag.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// checkFails runs the check of cfg with timeout and wants a failing
// report, within bound: a peer that never answers must not hold the
// check beyond its timeout.
func checkFails(t *testing.T, cfg *config.Agent, timeout, bound time.Duration) diag.Report {
	t.Helper()
	start := time.Now()
	rep := diag.Check(context.Background(), cfg, checkOptions(diag.Options{Timeout: timeout}))
	if d := time.Since(start); d > bound {
		t.Errorf("Check took %s with a %s timeout", d, timeout)
	}
	if rep.OK {
		t.Error("report OK, want a failure")
	}
	return rep
}

// wantCheckResult checks one result's status and that each of its Detail,
// Cause and Fix contains the given text ("" to skip).
func wantCheckResult(t *testing.T, rs []diag.Result, name, status, detail, cause, fix string) {
	t.Helper()
	r := checkResult(t, rs, name)
	if r.Status != status {
		t.Errorf("%s: status got %s, want %s (%+v)", name, r.Status, status, r)
	}
	for _, c := range []struct{ field, got, want string }{{"detail", r.Detail, detail}, {"cause", r.Cause, cause}, {"fix", r.Fix, fix}} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: %s got %q, want it to contain %q", name, c.field, c.got, c.want)
		}
	}
	if r.Status == diag.StatusFail && (r.Cause == "" || r.Fix == "") {
		t.Errorf("%s: a failure needs a cause and a fix: %+v", name, r)
	}
}

// noSecret fails if the report, as JSON, holds any of the secrets.
func checkNoSecret(t *testing.T, v any, secrets ...string) {
	t.Helper()
	b, _ := json.Marshal(v)
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Errorf("the report contains a secret (%s…): %s", s[:min(8, len(s))], b)
		}
	}
}

func TestCheckAllPass(t *testing.T) {
	cg := startCheckGateway(t)
	cj := startCheckJira(t, false, jiratest.Options{})
	for _, transport := range []string{"auto", "quic", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			cfg := checkConfig(t, cg, cj, "transport: "+transport, "")
			rep := diag.Check(context.Background(), cfg, checkOptions(diag.Options{Version: "test"}))
			if !rep.OK {
				t.Errorf("report not OK: %+v", rep)
			}
			if got, want := checkNames(rep.Gateway), []string{"dns", "tcp", "tls", "quic", "auth"}; !slices.Equal(got, want) {
				t.Errorf("gateway checks: got %v, want %v", got, want)
			}
			wantCheckResult(t, rep.Gateway, "dns", diag.StatusSkip, "IP address", "", "")
			wantTransport := map[string]string{"auto": "quic", "quic": "quic", "tcp": "tcp"}[transport]
			wantCheckResult(t, rep.Gateway, "auth", diag.StatusPass, "accepted over "+wantTransport, "", "")
			switch transport {
			case "quic":
				wantCheckResult(t, rep.Gateway, "tcp", diag.StatusSkip, "transport is quic", "", "")
				wantCheckResult(t, rep.Gateway, "tls", diag.StatusSkip, "QUIC", "", "")
				wantCheckResult(t, rep.Gateway, "quic", diag.StatusPass, "", "", "")
			case "tcp":
				wantCheckResult(t, rep.Gateway, "tls", diag.StatusPass, "gateway.ca_file", "", "")
				wantCheckResult(t, rep.Gateway, "quic", diag.StatusSkip, "transport is tcp", "", "")
			default:
				wantCheckResult(t, rep.Gateway, "tls", diag.StatusPass, "verified", "", "")
				wantCheckResult(t, rep.Gateway, "quic", diag.StatusPass, "", "", "")
			}
			if len(rep.Sites) != 1 || rep.Sites[0].Site != "jira" || !rep.Sites[0].OK {
				t.Fatalf("sites: %+v", rep.Sites)
			}
			rs := rep.Sites[0].Results
			if got, want := checkNames(rs), []string{"dns", "tcp", "tls", "credentials", "permissions"}; !slices.Equal(got, want) {
				t.Errorf("site checks: got %v, want %v", got, want)
			}
			wantCheckResult(t, rs, "tls", diag.StatusWarn, "http://", "unencrypted", "https://")
			wantCheckResult(t, rs, "credentials", diag.StatusPass, "(service account)", "", "")
			wantCheckResult(t, rs, "permissions", diag.StatusPass, "BROWSE_PROJECTS, CREATE_ISSUES", "", "")
			checkNoSecret(t, rep, cg.brokerToken, cj.token)
		})
	}
	// The check's sessions announce no site and are gone once it returns.
	testwait.For(t, 5*time.Second, "the check's session gone from the gateway", func() bool { return len(checkBrokerStatus(t, cg).Sessions) == 0 })
}

func TestCheckGatewayFailures(t *testing.T) {
	cg := startCheckGateway(t)
	cj := startCheckJira(t, false, jiratest.Options{})
	prx := tunneltest.StartConnectProxy(t, "user", checkProxyPassword)
	strict := tunneltest.StartConnectProxy(t, "user", checkProxyPassword)
	strict.Deny(cg.addr)
	closed := tunneltest.ClosedAddr(t)

	tests := []struct {
		name                 string
		gw                   string
		edit                 func(*config.Agent)
		check                string
		status               string
		detail, cause, fix   string
		wantOK               bool
		skippedAfter         []string
		passAuthOverProtocol string
	}{
		{name: "nothing listening", edit: func(c *config.Agent) { c.Gateway.Address = closed },
			check: "tcp", status: diag.StatusFail, cause: "Connection refused", fix: "gateway.address",
			skippedAfter: []string{"tls", "quic", "auth"}},
		{name: "wrong broker token", edit: func(c *config.Agent) { c.Broker.Token = "not-the-token" },
			check: "auth", status: diag.StatusFail, cause: `refused broker id "acme" or its token`, fix: "broker.token"},
		{name: "unknown broker", edit: func(c *config.Agent) { c.Broker.ID = "nobody" },
			check: "auth", status: diag.StatusFail, cause: `refused broker id "nobody"`, fix: "broker.id"},
		{name: "no ca_file", edit: func(c *config.Agent) { c.Gateway.CAFile = "" },
			check: "tls", status: diag.StatusFail, cause: "unknown authority", fix: "Set gateway.ca_file to the CA that signed the gateway's certificate",
			skippedAfter: []string{"quic", "auth"}},
		{name: "name mismatch", gw: "server_name: gw.example.com",
			check: "tls", status: diag.StatusFail, cause: "not valid for gw.example.com", fix: "gateway.server_name"},
		{name: "proxy without credentials", gw: "proxy: " + prx.URL("", "").String(),
			check: "tcp", status: diag.StatusFail, detail: "through the proxy", cause: "requires authentication", fix: "user:password in gateway.proxy"},
		{name: "proxy refuses credentials", gw: "proxy: " + prx.URL("user", "wrong").String(),
			check: "tcp", status: diag.StatusFail, cause: "refused our credentials", fix: "set the right user:password in gateway.proxy"},
		{name: "proxy forbids the gateway", gw: "proxy: " + strict.URL("user", checkProxyPassword).String(),
			check: "tcp", status: diag.StatusFail, cause: "The proxy refused to open a tunnel to " + cg.addr + " (403 Forbidden).",
			fix: "Ask your network team to allow CONNECT to " + cg.addr + " through the proxy.", skippedAfter: []string{"tls", "quic", "auth"}},
		{name: "proxy cannot reach the gateway", gw: "proxy: " + prx.URL("user", checkProxyPassword).String(),
			edit:  func(c *config.Agent) { c.Gateway.Address = closed },
			check: "tcp", status: diag.StatusFail, cause: "The proxy could not reach " + closed + " (502 Bad Gateway).",
			fix: "Check gateway.address, and ask your network team whether the proxy may connect to " + closed + "."},
		{name: "proxy down", gw: "proxy: http://" + closed,
			check: "tcp", status: diag.StatusFail, cause: "Cannot connect to the proxy: connection refused: nothing listens on " + closed,
			fix: "Check the proxy's host and port in gateway.proxy."},
		{name: "proxy", gw: "proxy: " + prx.URL("user", checkProxyPassword).String(),
			check: "tcp", status: diag.StatusPass, detail: "through the proxy http://user:xxxxx@", wantOK: true, passAuthOverProtocol: "tcp"},
		{name: "unreadable ca_file", edit: func(c *config.Agent) { c.Gateway.CAFile = filepath.Join(t.TempDir(), "missing.pem") },
			check: "tls", status: diag.StatusFail, cause: "gateway.ca_file", fix: "gateway.ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := checkConfig(t, cg, cj, tt.gw, "")
			if tt.edit != nil {
				tt.edit(cfg)
			}
			rep := diag.Check(context.Background(), cfg, checkOptions(diag.Options{}))
			if rep.OK != tt.wantOK {
				t.Errorf("OK: got %v, want %v", rep.OK, tt.wantOK)
			}
			wantCheckResult(t, rep.Gateway, tt.check, tt.status, tt.detail, tt.cause, tt.fix)
			for _, n := range tt.skippedAfter {
				wantCheckResult(t, rep.Gateway, n, diag.StatusSkip, "not run: "+tt.check+" failed", "", "")
			}
			if tt.passAuthOverProtocol != "" {
				wantCheckResult(t, rep.Gateway, "quic", diag.StatusSkip, "a proxy is set", "", "")
				wantCheckResult(t, rep.Gateway, "auth", diag.StatusPass, "over "+tt.passAuthOverProtocol, "", "")
			}
			if !rep.Sites[0].OK {
				t.Errorf("the site's checks should pass whatever the gateway's: %+v", rep.Sites[0])
			}
			checkNoSecret(t, rep, cg.brokerToken, cj.token, checkProxyPassword)
		})
	}
}

// checkUDPBlackHole fronts the gateway's TCP port on a new port whose UDP side
// swallows every datagram: QUIC cannot complete, TCP works.
func checkUDPBlackHole(t *testing.T, gatewayAddr string) string {
	t.Helper()
	r, err := tunneltest.NewRelay(gatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetUDP(tunneltest.Blackhole())
	return r.Addr()
}

func TestCheckUDPBlocked(t *testing.T) {
	cg := startCheckGateway(t)
	cj := startCheckJira(t, false, jiratest.Options{})
	hole := checkUDPBlackHole(t, cg.addr)

	t.Run("auto", func(t *testing.T) {
		cfg := checkConfig(t, cg, cj, "transport: auto", "")
		cfg.Gateway.Address = hole
		rep := diag.Check(context.Background(), cfg, checkOptions(diag.Options{}))
		if !rep.OK {
			t.Errorf("a warning must not fail the check: %+v", rep.Gateway)
		}
		wantCheckResult(t, rep.Gateway, "quic", diag.StatusWarn, "UDP to the gateway seems blocked; the agent will use TCP (transport: tcp works)",
			"No QUIC handshake", "gateway.transport: tcp")
		wantCheckResult(t, rep.Gateway, "auth", diag.StatusPass, "over tcp", "", "")
	})
	t.Run("quic", func(t *testing.T) {
		cfg := checkConfig(t, cg, cj, "transport: quic", "")
		cfg.Gateway.Address = hole
		rep := checkFails(t, cfg, 3*time.Second, 5*time.Second)
		wantCheckResult(t, rep.Gateway, "quic", diag.StatusFail, "", "No QUIC handshake", "UDP")
		wantCheckResult(t, rep.Gateway, "auth", diag.StatusSkip, "not run", "", "")
	})
}

func TestCheckSiteFailures(t *testing.T) {
	plain := startCheckJira(t, false, jiratest.Options{})
	secure := startCheckJira(t, true, jiratest.Options{})
	secureCA := secure.caFile(t)
	noCreate := startCheckJira(t, false, jiratest.Options{DenyPermissions: []string{"CREATE_ISSUES"}})
	noBrowse := startCheckJira(t, false, jiratest.Options{DenyPermissions: []string{"BROWSE_PROJECTS", "CREATE_ISSUES"}})
	dc := startCheckJira(t, false, jiratest.Options{})
	dc.SetStatus("/rest/api/3/myself", http.StatusNotFound, nil)
	forbidden := startCheckJira(t, false, jiratest.Options{})
	forbidden.SetStatus("/rest/api/3/myself", http.StatusForbidden, nil)
	cloud := startCheckJira(t, false, jiratest.Options{})
	prx := tunneltest.StartConnectProxy(t, "user", checkProxyPassword)
	strict := tunneltest.StartConnectProxy(t, "user", checkProxyPassword)
	strict.Deny(strings.TrimPrefix(secure.url, "https://"))
	closedTLS := tunneltest.ClosedAddr(t)
	closed := "http://" + tunneltest.ClosedAddr(t)

	tests := []struct {
		name               string
		jira               *checkJira
		extra              string
		edit               func(*config.Site)
		check, status      string
		detail, cause, fix string
		siteOK             bool
	}{
		{name: "wrong bearer token", jira: plain, edit: func(s *config.Site) { s.Auth.Token = "wrong" },
			check: "credentials", status: diag.StatusFail, cause: "401", fix: "auth.token"},
		{name: "wrong basic token", jira: plain, edit: func(s *config.Site) {
			s.Auth.Type, s.Auth.Email, s.Auth.Token = config.AuthBasic, "me@example.com", "wrong"
		}, check: "credentials", status: diag.StatusFail, cause: "401", fix: "auth.email"},
		{name: "self-signed without ca_file", jira: secure,
			check: "tls", status: diag.StatusFail, cause: "unknown authority", fix: "Set tls.ca_file to the CA that signed Jira's certificate"},
		{name: "self-signed with ca_file", jira: secure, extra: "tls: {ca_file: " + secureCA + "}",
			check: "tls", status: diag.StatusPass, detail: "tls.ca_file " + secureCA, siteOK: true},
		{name: "insecure_skip_verify", jira: secure, extra: "tls: {insecure_skip_verify: true}",
			check: "tls", status: diag.StatusWarn, detail: "verification off (insecure_skip_verify)", cause: "insecure_skip_verify", fix: "tls.ca_file", siteOK: true},
		{name: "name mismatch", jira: secure, extra: "tls: {ca_file: " + secureCA + "}",
			edit:  func(s *config.Site) { s.URL = strings.Replace(s.URL, "127.0.0.1", "localhost", 1) },
			check: "tls", status: diag.StatusFail, cause: "not valid for localhost", fix: "url"},
		{name: "nothing listening", jira: plain, edit: func(s *config.Site) { s.URL = closed },
			check: "tcp", status: diag.StatusFail, cause: "Connection refused", fix: "firewall"},
		{name: "create issues missing", jira: noCreate,
			check: "permissions", status: diag.StatusWarn, detail: "missing CREATE_ISSUES", fix: "Jira User role", siteOK: true},
		{name: "browse projects missing", jira: noBrowse,
			check: "permissions", status: diag.StatusFail, detail: "missing BROWSE_PROJECTS, CREATE_ISSUES", fix: "Jira User role"},
		{name: "allowlist refuses mypermissions", jira: plain, extra: "allow: {deny: [getMyPermissions]}",
			check: "permissions", status: diag.StatusWarn, detail: "not checked", fix: "getMyPermissions", siteOK: true},
		{name: "allowlist refuses myself", jira: plain, extra: "allow: {deny: [getCurrentUser]}",
			check: "credentials", status: diag.StatusFail, cause: "path_not_allowed", fix: "getCurrentUser"},
		{name: "data center REST API 2", jira: dc,
			check: "credentials", status: diag.StatusPass, detail: "via REST API 2", siteOK: true},
		{name: "forbidden", jira: forbidden,
			check: "credentials", status: diag.StatusFail, cause: "403", fix: "Jira User role"},
		{name: "cloud_site", jira: cloud, edit: func(s *config.Site) {
			s.CloudSite, s.AtlassianAPI, s.URL, s.Auth.Type = cloud.url, cloud.url, "", config.AuthServiceAccount
		}, check: "cloud_id", status: diag.StatusPass, detail: "/ex/jira/" + jiratest.DefaultCloudID, siteOK: true},
		{name: "cloud_site unreachable", jira: cloud, edit: func(s *config.Site) {
			s.CloudSite, s.AtlassianAPI, s.URL = closed, closed, ""
		}, check: "cloud_id", status: diag.StatusFail, fix: "cloud_site"},
		{name: "proxy without credentials", jira: secure, extra: "proxy: " + prx.URL("", "").String(),
			check: "tcp", status: diag.StatusFail, cause: "requires authentication", fix: "user:password in proxy"},
		{name: "proxy refuses credentials", jira: secure, extra: "proxy: " + prx.URL("user", "wrong").String(),
			check: "tcp", status: diag.StatusFail, cause: "The proxy refused our credentials (407 Proxy Authentication Required).",
			fix: "set the right user:password in proxy."},
		{name: "proxy forbids Jira", jira: secure, extra: "proxy: " + strict.URL("user", checkProxyPassword).String(),
			check: "tcp", status: diag.StatusFail, detail: "through the proxy", cause: "(403 Forbidden)", fix: "allow CONNECT to 127.0.0.1:"},
		{name: "proxy cannot reach Jira", jira: secure, extra: "proxy: " + prx.URL("user", checkProxyPassword).String(),
			edit:  func(s *config.Site) { s.URL = "https://" + closedTLS },
			check: "tcp", status: diag.StatusFail, cause: "The proxy could not reach " + closedTLS + " (502 Bad Gateway).",
			fix: "Check url, and ask your network team whether the proxy may connect to " + closedTLS + "."},
		{name: "through the proxy", jira: secure, extra: "proxy: " + prx.URL("user", checkProxyPassword).String() + "\ntls: {ca_file: " + secureCA + "}",
			check: "tcp", status: diag.StatusPass, detail: "through the proxy", siteOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := checkConfig(t, nil, tt.jira, "", tt.extra)
			site := cfg.Sites[0]
			if tt.edit != nil {
				tt.edit(&site)
			}
			sr := diag.CheckSite(context.Background(), site, diag.SiteOptions{CloudID: agent.DiscoverCloudID})
			if sr.OK != tt.siteOK {
				t.Errorf("OK: got %v, want %v (%+v)", sr.OK, tt.siteOK, sr.Results)
			}
			wantCheckResult(t, sr.Results, tt.check, tt.status, tt.detail, tt.cause, tt.fix)
			if tt.status == diag.StatusFail {
				i := slices.IndexFunc(sr.Results, func(r diag.Result) bool { return r.Name == tt.check })
				for _, r := range sr.Results[i+1:] {
					if r.Status != diag.StatusSkip {
						t.Errorf("%s after the failed %s: got %s, want skip", r.Name, tt.check, r.Status)
					}
				}
			}
			checkNoSecret(t, sr, tt.jira.token)
		})
	}
}

func TestUnauthorizedFix(t *testing.T) {
	for _, tt := range []struct {
		auth, url, want string
	}{
		{config.AuthServiceAccount, "https://acme.atlassian.net", "work only through https://api.atlassian.com/ex/jira/<cloudId>"},
		{config.AuthServiceAccount, "https://api.atlassian.com/ex/jira/x", "service account in Atlassian Admin"},
		{config.AuthBasic, "https://acme.atlassian.net", "auth.email"},
		{config.AuthBearer, "https://jira.example.com", "personal access token"},
	} {
		u := checkMustURL(t, tt.url)
		got := diag.UnauthorizedFix(config.Site{Auth: config.Auth{Type: tt.auth}}, u)
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s at %s: got %q, want it to contain %q", tt.auth, tt.url, got, tt.want)
		}
	}
}

// TestCheckBounded: a gateway that accepts TCP and never speaks, and a
// Jira that never answers, are both cut at the run's timeout, and no
// goroutine of the run survives it.
func TestCheckBounded(t *testing.T) {
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	t.Cleanup(func() {
		mute.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	slow := startCheckJira(t, false, jiratest.Options{})
	slow.SetDelay(time.Minute)
	cfg := checkConfig(t, nil, slow, "transport: tcp", "")
	cfg.Gateway.Address = mute.Addr().String()

	ignore := goleak.IgnoreCurrent()
	rep := checkFails(t, cfg, time.Second, 3*time.Second)
	wantCheckResult(t, rep.Gateway, "tls", diag.StatusFail, "", "", "")
	wantCheckResult(t, rep.Gateway, "auth", diag.StatusSkip, "", "", "")
	wantCheckResult(t, rep.Sites[0].Results, "credentials", diag.StatusFail, "", "upstream_timeout", "Jira is up")
	slow.SetDelay(0)
	goleak.VerifyNone(t, ignore)
}

// TestRemoteCheck runs a real agent against a real gateway and asks the
// gateway's API for a site check.
func TestRemoteCheck(t *testing.T) {
	cg := startCheckGateway(t)
	cj := startCheckJira(t, false, jiratest.Options{})
	cfg := checkConfig(t, cg, cj, "transport: tcp\nconnections: 1", "")
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, cfg, agent.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testwait.For(t, 10*time.Second, "one session at the gateway", func() bool { return len(checkBrokerStatus(t, cg).Sessions) == 1 })

	resp, body := checkCall(t, cg, "POST", "/v1/brokers/acme/sites/jira/check", cg.connectorToken, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check: got %d %s, want 200", resp.StatusCode, body)
	}
	var sr diag.SiteReport
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatalf("check: %v in %s", err, body)
	}
	if sr.Site != "jira" || !sr.OK {
		t.Errorf("report: %+v", sr)
	}
	wantCheckResult(t, sr.Results, "credentials", diag.StatusPass, "service account", "", "")
	checkNoSecret(t, sr, cj.token, cg.brokerToken)

	for _, tt := range []struct {
		path, token string
		header      http.Header
		status      int
		code        brokerhttp.Code
	}{
		{"/v1/brokers/acme/sites/nope/check", cg.connectorToken, nil, http.StatusNotFound, brokerhttp.UnknownSite},
		{"/v1/brokers/acme/sites/jira/check", "wrong", nil, http.StatusUnauthorized, brokerhttp.Unauthorized},
	} {
		resp, body := checkCall(t, cg, "POST", tt.path, tt.token, tt.header)
		if resp.StatusCode != tt.status || resp.Header.Get(brokerhttp.HeaderError) != string(tt.code) {
			t.Errorf("POST %s: got %d %s, want %d %s", tt.path, resp.StatusCode, body, tt.status, tt.code)
		}
	}

	// A connector cannot ask for the check through /b/: the gateway drops
	// its Ox-Broker-* headers and the request goes to Jira.
	resp, body = checkCall(t, cg, "GET", "/b/acme/jira/rest/api/3/myself", cg.connectorToken,
		http.Header{brokerhttp.HeaderOp: {brokerhttp.OpCheck}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"accountId"`) {
		t.Errorf("GET /b/.../myself with %s: got %d %s, want Jira's answer", brokerhttp.HeaderOp, resp.StatusCode, body)
	}

	if _, ok := a.CheckSite(context.Background(), "nope", ""); ok {
		t.Error("CheckSite of an unknown site: got ok")
	}
}

func checkCall(t *testing.T, cg *checkGW, method, path, token string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	resp, b, err := connectortest.Call(context.Background(), c, method, "http://"+cg.api+path, token, header, "")
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func checkBrokerStatus(t *testing.T, cg *checkGW) gateway.BrokerStatus {
	t.Helper()
	resp, b := checkCall(t, cg, "GET", "/v1/brokers/acme", cg.connectorToken, nil)
	var st gateway.BrokerStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("GET /v1/brokers/acme: %d %s", resp.StatusCode, b)
	}
	return st
}

func checkMustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCheckReflectedCredential: a Jira (or a proxy in front of it) that
// echoes the Authorization header into myself's displayName must not put
// the site's credential into the check's report, for any auth type.
func TestCheckReflectedCredential(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		auth := r.Header.Get("Authorization")
		switch {
		case strings.HasSuffix(r.URL.Path, "/myself"):
			_, pass, _ := r.BasicAuth()
			fmt.Fprintf(w, `{"displayName":%q,"name":%q,"accountType":"app","active":true}`, auth, pass)
		case strings.HasSuffix(r.URL.Path, "/mypermissions"):
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errorMessages":["no permissions for %s"]}`, auth)
		}
	}))
	t.Cleanup(srv.Close)
	for _, auth := range []config.Auth{
		{Type: config.AuthBearer, Token: config.Secret("jira-" + gateway.NewToken())},
		{Type: config.AuthBasic, Email: "me@acme.com", Token: config.Secret("jira-" + gateway.NewToken())},
	} {
		t.Run(auth.Type, func(t *testing.T) {
			cj := &checkJira{url: srv.URL, token: auth.Token.Reveal()}
			cfg := checkConfig(t, nil, cj, "", "")
			site := cfg.Sites[0]
			site.Auth = auth
			sr := diag.CheckSite(context.Background(), site, diag.SiteOptions{CloudID: agent.DiscoverCloudID})
			wantCheckResult(t, sr.Results, "credentials", diag.StatusPass, "REDACTED", "", "")
			secrets := []string{auth.Token.Reveal()}
			if auth.Type == config.AuthBasic {
				secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(auth.Email+":"+auth.Token.Reveal())))
			}
			checkNoSecret(t, sr, secrets...)
		})
	}
}

// TestScrubResults: whatever a result quotes, the site's credential
// leaves the check as the marker.
func TestScrubResults(t *testing.T) {
	auth := config.Auth{Type: config.AuthBasic, Email: "me@acme.com", Token: "tok-5b0c1d2e3f"}
	b64 := base64.StdEncoding.EncodeToString([]byte("me@acme.com:tok-5b0c1d2e3f"))
	rs := []diag.Result{{CheckStep: brokerhttp.CheckStep{Name: "x", Detail: "saw Basic " + b64, Cause: "token tok-5b0c1d2e3f", Fix: "me@acme.com:tok-5b0c1d2e3f"}}}
	diag.ScrubResults(rs, proxy.NewScrubber(auth))
	checkNoSecret(t, rs, "tok-5b0c1d2e3f", b64)
	if !strings.Contains(rs[0].Detail, "REDACTED") {
		t.Errorf("no marker: %+v", rs[0])
	}
}

// TestResultJSON pins the JSON of a step, which the gateway reads into
// brokerhttp.CheckStep: the step's own fields, flat, and nothing of what
// only the agent uses (Lasting).
func TestResultJSON(t *testing.T) {
	r := diag.Result{CheckStep: brokerhttp.CheckStep{Name: "credentials", Status: diag.StatusFail,
		Detail: "GET /rest/api/3/myself: 401", Cause: "Jira refused the token.", Fix: "Make a new token.", DurationMS: 12},
		Lasting: true}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"credentials","status":"fail","detail":"GET /rest/api/3/myself: 401","cause":"Jira refused the token.","fix":"Make a new token.","duration_ms":12}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back brokerhttp.CheckStep
	if err := json.Unmarshal(b, &back); err != nil || back != r.CheckStep {
		t.Errorf("the gateway reads %+v, %v; want %+v", back, err, r.CheckStep)
	}
}
