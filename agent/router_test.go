package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// siteCall sends one request for site through the agent's router, as a
// tunnel stream would, and returns the status and the broker error code.
func siteCall(t *testing.T, a *Agent, site, path string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set(brokerhttp.HeaderSite, site)
	rec := httptest.NewRecorder()
	a.serveStream(rec, req)
	return rec.Code, rec.Header().Get(brokerhttp.HeaderError), rec.Body.String()
}

// tenantInfo serves /_edge/tenant_info with cloudID, or 503 while the
// flag it returns is set.
func tenantInfo(t *testing.T, cloudID string) (*httptest.Server, *atomic.Bool) {
	down := new(atomic.Bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"cloudId": cloudID})
	}))
	t.Cleanup(srv.Close)
	return srv, down
}

// TestCloudSiteDownAtStartKeepsOtherSites: a cloud_site whose Cloud ID
// cannot be read at start does not stop the agent. Its calls get 502
// upstream_unreachable naming the cause, readiness names it, the other
// site serves, and once tenant_info answers the site serves too.
func TestCloudSiteDownAtStartKeepsOtherSites(t *testing.T) {
	saved, savedMin := discoveryBackoff, discoveryMinWait
	discoveryBackoff, discoveryMinWait = tunnel.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}, 10*time.Millisecond
	t.Cleanup(func() { discoveryBackoff, discoveryMinWait = saved, savedMin })

	js := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: "jira-tok"}}})
	jira := httptest.NewServer(js)
	defer jira.Close()
	tenant, tenantDown := tenantInfo(t, js.CloudID())
	tenantDown.Store(true)

	dir := t.TempDir()
	yaml := fmt.Sprintf(`broker: {id: acme, token: b}
state_dir: %q
gateway: {address: "127.0.0.1:9"}
sites:
  - name: cloud
    cloud_site: %s
    atlassian_api: %s
    auth: {type: service_account, token: jira-tok}
  - name: dc
    url: %s
    auth: {type: bearer, token: jira-tok}
`, filepath.Join(dir, "state"), tenant.URL, jira.URL, jira.URL)
	cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := New(context.Background(), cfg, Options{Logger: newLogger(logs)})
	if err != nil {
		t.Fatalf("New with one cloud_site down: %v", err)
	}
	defer func() { a.router.Load().close() }()
	a.live.Store(1) // as if a tunnel were up: readiness is about the sites here

	if code, _, body := siteCall(t, a, "dc", "/rest/api/3/myself"); code != 200 {
		t.Errorf("the other site: got %d %s, want 200", code, body)
	}
	code, ecode, body := siteCall(t, a, "cloud", "/rest/api/3/myself")
	if code != 502 || ecode != string(brokerhttp.UpstreamUnreachable) ||
		!strings.Contains(body, "site cloud is down: the Cloud ID of "+tenant.URL+" cannot be read") || !strings.Contains(body, "503") {
		t.Errorf("the site that is down: got %d %s %s, want 502 upstream_unreachable naming the cause", code, ecode, body)
	}
	ok, why := a.Readiness()
	if !ok || !strings.Contains(why, "site cloud: the Cloud ID of "+tenant.URL+" cannot be read") {
		t.Errorf("readiness: got %v %q, want ready, naming the site that is down", ok, why)
	}
	if !strings.Contains(logs.String(), "site is down: cannot read its Cloud ID") {
		t.Errorf("no error logged for the site that is down:\n%s", logs)
	}

	tenantDown.Store(false)
	testwait.For(t, 10*time.Second, "the site to come up", func() bool {
		code, _, _ := siteCall(t, a, "cloud", "/rest/api/3/myself")
		return code == 200
	})
	if ok, why := a.Readiness(); !ok || why != "" {
		t.Errorf("readiness once every site serves: got %v %q", ok, why)
	}
	want := jira.URL + "/ex/jira/" + js.CloudID()
	if infos := a.router.Load().infos(); infos[0].URL != want {
		t.Errorf("site list: got %q, want %q", infos[0].URL, want)
	}
}

// TestReloadKeepsLastGoodSite: a reload whose tls.ca_file for a site
// cannot be read keeps that site serving with its last good settings; a
// site whose Cloud ID cannot be read again keeps the one read before.
func TestReloadKeepsLastGoodSite(t *testing.T) {
	js := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: "jira-tok"}}})
	jira := httptest.NewServer(js)
	defer jira.Close()
	tenant, tenantDown := tenantInfo(t, js.CloudID())

	dir := t.TempDir()
	certs, err := devcert.WriteFiles(dir, "ca", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	write := func(caFile string) *config.Agent {
		yaml := fmt.Sprintf(`broker: {id: acme, token: b}
state_dir: %q
gateway: {address: "127.0.0.1:9"}
sites:
  - name: dc
    url: %s
    auth: {type: bearer, token: jira-tok}
    tls: {ca_file: %q}
  - name: cloud
    cloud_site: %s
    atlassian_api: %s
    auth: {type: service_account, token: jira-tok}
`, filepath.Join(dir, "state"), jira.URL, caFile, tenant.URL, jira.URL)
		cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	logs := &syncBuffer{}
	a, err := New(context.Background(), write(certs.CACert), Options{Logger: newLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.router.Load().close() }()

	tenantDown.Store(true)
	missing := filepath.Join(dir, "gone.pem")
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the missing CA file exists")
	}
	if err := a.Reload(context.Background(), write(missing)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	for _, site := range []string{"dc", "cloud"} {
		if code, _, body := siteCall(t, a, site, "/rest/api/3/myself"); code != 200 {
			t.Errorf("site %s after the reload: got %d %s, want 200 on its last good settings", site, code, body)
		}
	}
	for _, want := range []string{"the site's new settings cannot be used; it keeps serving with its last good settings",
		"cannot read the site's Cloud ID again; keeping the one read before"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
