package jira_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/jira"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCloudSiteURL(t *testing.T) {
	tests := []struct {
		site string
		want string // empty: an error
	}{
		{"acme", "https://acme.atlassian.net"},
		{"Acme", "https://acme.atlassian.net"},
		{" acme ", "https://acme.atlassian.net"},
		{"acme.atlassian.net", "https://acme.atlassian.net"},
		{"acme.atlassian.net/", "https://acme.atlassian.net"},
		{"https://acme.atlassian.net", "https://acme.atlassian.net"},
		{"https://acme.atlassian.net/", "https://acme.atlassian.net"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://jira.example.com:8443/", "https://jira.example.com:8443"},
		{"my-site-2", "https://my-site-2.atlassian.net"},
		{"", ""},
		{"-acme", ""},
		{"acme-", ""},
		{"ac_me", ""},
		{"acme.example.com", ""},
		{"acme.atlassian.net/jira", ""},
		{strings.Repeat("a", 64), ""},
		{"ftp://acme.atlassian.net", ""},
		{"https://", ""},
		{"https://acme.atlassian.net/jira", ""},
		{"https://acme.atlassian.net/?x=1", ""},
		{"https://user:pass@acme.atlassian.net", ""},
		{"https://acme.atlassian.net:bad", ""},
	}
	for _, tt := range tests {
		t.Run(tt.site, func(t *testing.T) {
			u, err := jira.CloudSiteURL(tt.site)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", u)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Errorf("got %v, %v; want %s", u, err, tt.want)
			}
		})
	}
}

func TestDiscoverCloudID(t *testing.T) {
	const id = "0b6a9c7e-3f51-4c8e-9d2a-7e4f1b2c3d4e"
	standin := jiratest.New(jiratest.Options{
		CloudID:     id,
		Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: "secret"}},
	})
	for _, newServer := range []func(http.Handler) *httptest.Server{httptest.NewServer, httptest.NewTLSServer} {
		standin.Reset()
		srv := newServer(standin)
		got, err := jira.DiscoverCloudID(context.Background(), srv.Client(), srv.URL+"/")
		srv.Close()
		if err != nil || got != id {
			t.Fatalf("%s: got %q, %v; want %q", srv.URL, got, err, id)
		}
		reqs := standin.Requests()
		if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != "/_edge/tenant_info" {
			t.Fatalf("requests: got %+v, want one GET /_edge/tenant_info", reqs)
		}
		for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
			if v, ok := reqs[0].Header[h]; ok {
				t.Errorf("%s was sent: %q", h, v)
			}
		}
	}
}

func TestDiscoverCloudIDFailures(t *testing.T) {
	serve := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(body))
		})
	}
	refused := jiratest.New(jiratest.Options{})
	refused.SetStatus("/_edge/tenant_info", http.StatusServiceUnavailable, nil)
	var syntaxErr *json.SyntaxError

	tests := []struct {
		name    string
		handler http.Handler
		want    string           // in the message
		wantErr func(error) bool // when the cause matters
	}{
		{"status", refused, "503", nil},
		{"not found", serve(http.StatusNotFound, `{"cloudId":"`+jiratest.DefaultCloudID+`"}`), "404", nil},
		{"html", serve(http.StatusOK, "<html>Your site is unavailable</html>"), "not JSON",
			func(err error) bool { return errors.As(err, &syntaxErr) }},
		{"no cloud id", serve(http.StatusOK, `{"cloudId":""}`), "no cloudId", nil},
		{"other document", serve(http.StatusOK, `{"tenantId":"x"}`), "no cloudId", nil},
		{"not a uuid", jiratest.New(jiratest.Options{CloudID: "not-a-uuid"}), "not a UUID", nil},
		{"uuid without dashes", serve(http.StatusOK, `{"cloudId":"0b6a9c7e3f514c8e9d2a7e4f1b2c3d4e0000"}`), "not a UUID", nil},
		{"too large", serve(http.StatusOK, `{"cloudId":"`+strings.Repeat("a", 70<<10)+`"}`), "larger than", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			id, err := jira.DiscoverCloudID(context.Background(), srv.Client(), srv.URL)
			if err == nil {
				t.Fatalf("got %q, want an error", id)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), srv.URL+"/_edge/tenant_info") {
				t.Errorf("got %q, want it to name the URL and say %q", err, tt.want)
			}
			if tt.wantErr != nil && !tt.wantErr(err) {
				t.Errorf("got %v, which does not wrap the cause", err)
			}
		})
	}
}

func TestDiscoverCloudIDCancelled(t *testing.T) {
	srv := httptest.NewServer(jiratest.New(jiratest.Options{}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := jira.DiscoverCloudID(ctx, srv.Client(), srv.URL); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestDiscoverCloudIDBadSite(t *testing.T) {
	// A bad site fails before any request, so a nil client is never used.
	if _, err := jira.DiscoverCloudID(context.Background(), nil, "not a site"); err == nil {
		t.Error("got nil, want an error")
	}
}

// TestDiscoverCloudIDRedirects: a redirect within the site is followed; one
// to another host is refused, and that host is never called.
func TestDiscoverCloudIDRedirects(t *testing.T) {
	const id = "18cd6e54-b562-4ed3-8a43-ca1fc772b26f"
	var otherCalls int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherCalls++
		json.NewEncoder(w).Encode(map[string]string{"cloudId": "00000000-0000-0000-0000-000000000000"})
	}))
	defer other.Close()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_edge/tenant_info":
			if r.URL.Query().Get("away") != "" {
				http.Redirect(w, r, other.URL+"/_edge/tenant_info", http.StatusFound)
				return
			}
			http.Redirect(w, r, "/moved/tenant_info", http.StatusMovedPermanently)
		case "/moved/tenant_info":
			json.NewEncoder(w).Encode(map[string]string{"cloudId": id})
		}
	}))
	defer site.Close()

	got, err := jira.DiscoverCloudID(context.Background(), site.Client(), site.URL)
	if err != nil || got != id {
		t.Fatalf("redirect on the same host: got %q, %v; want %s", got, err, id)
	}

	// A client that would follow any redirect (the default) does not here.
	away := &http.Client{Transport: rewriteQuery{base: http.DefaultTransport, query: "away=1"}}
	_, err = jira.DiscoverCloudID(context.Background(), away, site.URL)
	if err == nil || !strings.Contains(err.Error(), "redirected to "+other.URL) {
		t.Errorf("redirect to another host: got %v, want a refusal", err)
	}
	if otherCalls != 0 {
		t.Errorf("the other host was called %d times", otherCalls)
	}
}

// rewriteQuery sets the query of every request it sends.
type rewriteQuery struct {
	base  http.RoundTripper
	query string
}

func (rq rewriteQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.URL.Path == "/_edge/tenant_info" {
		r.URL.RawQuery = rq.query
	}
	return rq.base.RoundTrip(r)
}
