package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/config"
)

// TestSiteStatus: a site on the page shows its upstream host, auth type
// and allowlist, never its credential, and words its token's expiry:
// amber under 30 days, red under 7.
func TestSiteStatus(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	site := config.Site{Name: "jira", Type: "jira", URL: "https://jira.acme.local/ctx",
		Auth:  config.Auth{Type: config.AuthBasic, Email: "me@acme.example", Token: "site-secret-token-1234"},
		Allow: config.Allow{Scopes: []string{"read:jira-work"}, Rules: []config.AllowRule{{Methods: []string{"GET"}, Path: "/rest/agile/1.0/board"}}}}
	for _, tt := range []struct {
		expires string
		want    string
		days    int
	}{
		{"2027-03-01", "ok", 58},
		{"2027-01-20", "soon", 18},
		{"2027-01-05", "urgent", 3},
		{"2026-12-30", "expired", -2},
	} {
		d, err := time.Parse(time.DateOnly, tt.expires)
		if err != nil {
			t.Fatal(err)
		}
		site.Auth.Expires = config.Date{Time: d}
		s := siteStatus(site, "", now)
		if s.Expiry != tt.want || s.DaysLeft == nil || *s.DaysLeft != tt.days || s.TokenExpires != tt.expires {
			t.Errorf("expires %s: got %s, %v days, want %s, %d", tt.expires, s.Expiry, s.DaysLeft, tt.want, tt.days)
		}
	}
	s := siteStatus(site, "", now)
	if s.UpstreamHost != "jira.acme.local" || s.AuthType != "basic" || len(s.Allow.Rules) != 1 || s.Allow.Rules[0] != "GET /rest/agile/1.0/board" {
		t.Errorf("got %+v", s)
	}
	b, _ := json.Marshal(s)
	if strings.Contains(string(b), "site-secret-token") || strings.Contains(string(b), "me@acme") {
		t.Errorf("the site's status holds its credential or account: %s", b)
	}
	if s := siteStatus(config.Site{Name: "c", CloudSite: "acme"}, "https://api.atlassian.com/ex/jira/abc", now); s.UpstreamHost != "api.atlassian.com" || s.Expiry != "" {
		t.Errorf("cloud site: got %+v", s)
	}
}

// TestStatusReportWhileChecksArrive: the page reads the sites' last checks
// while remote checks record theirs (run with -race), and the handler
// serves the page and its API without a tunnel.
func TestStatusReportWhileChecksArrive(t *testing.T) {
	a, err := New(context.Background(), expiryConfig(t, t.TempDir(), "", "2031-01-01", ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.router.Load().close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			a.board.recordSite(diag.SiteReport{Site: fmt.Sprintf("site%d", i%3), OK: true, Results: []diag.Result{}}, "gateway")
		}
	}()
	for range 50 {
		a.StatusReport()
	}
	<-done
	rep := a.StatusReport()
	if len(rep.Sites) != 2 || rep.Sites[0].Check == nil || rep.Sites[0].Check.By != "gateway" || rep.Sites[0].Expiry != "ok" {
		t.Errorf("got %+v", rep.Sites)
	}
	if rep.Ready || len(rep.Reasons) == 0 {
		t.Errorf("without a tunnel: ready %v, reasons %q", rep.Ready, rep.Reasons)
	}

	h := a.StatusHandler()
	for _, tt := range []struct{ path, want string }{
		{"/", `id="site-site0"`},
		{"/api/status", `"broker": "acme"`},
		{"/api/calls", `[]`},
		{"/assets/page.js", "X-Oxbroker-Request"},
		{"/assets/style.css", "--good"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.400s", tt.path, rec.Code, tt.want, rec.Body.String())
		}
	}
}
