package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
