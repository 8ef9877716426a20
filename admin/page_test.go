package admin

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/oxsecurity/oxbroker/config"
)

// pageServer serves a page behind WithPage on a real loopback listener,
// as the programs do; listen is the address the guard believes it listens
// on (the Host rules take it), and page counts the requests that got
// through.
func pageServer(t *testing.T, listen string, access config.AdminPage) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var passed atomic.Int64
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		passed.Add(1)
		fmt.Fprint(w, "the page")
	})
	h, err := WithPage(Handler(prometheus.NewRegistry(), func() (bool, string) { return true, "" }), page, listen, access)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, &passed
}

type pageRequest struct {
	method, path, host string
	header             map[string]string
}

func (r pageRequest) do(t *testing.T, srv *httptest.Server) (*http.Response, string) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	req, err := http.NewRequest(r.method, srv.URL+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.host != "" {
		req.Host = r.host
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPageGuard: the page answers only under the listener's own names
// (DNS rebinding), refuses cross-site and header-less POSTs, and sends a
// strict CSP; /healthz, /readyz and /metrics answer as before, whatever
// the Host.
func TestPageGuard(t *testing.T) {
	srv, passed := pageServer(t, "127.0.0.1:9108", config.AdminPage{Page: true, Hosts: []string{"broker-agent.corp.example"}})
	tests := []struct {
		name string
		req  pageRequest
		want int
	}{
		{"by its address", pageRequest{path: "/"}, 200},
		{"by localhost, another port (an SSH tunnel)", pageRequest{path: "/", host: "localhost:8000"}, 200},
		{"by ::1", pageRequest{path: "/", host: "[::1]:9108"}, 200},
		{"by 127.0.0.2", pageRequest{path: "/api/status", host: "127.0.0.2:9108"}, 200},
		{"by a name of admin.hosts", pageRequest{path: "/", host: "Broker-Agent.corp.example:9108"}, 200},
		{"rebinding: an attacker's name", pageRequest{path: "/api/status", host: "evil.example:9108"}, 421},
		{"rebinding: a name ending in localhost", pageRequest{path: "/", host: "localhost.evil.example"}, 421},
		{"rebinding: a name with 127.0.0.1 in it", pageRequest{path: "/", host: "127.0.0.1.evil.example"}, 421},
		{"no host", pageRequest{path: "/", host: " "}, 421},
		{"metrics under any name", pageRequest{path: "/metrics", host: "prometheus.scrape.example"}, 200},
		{"readyz under any name", pageRequest{path: "/readyz", host: "10.0.0.5:9108"}, 200},
		{"POST with the header", pageRequest{method: "POST", path: "/api/check", header: map[string]string{RequestHeader: "check"}}, 200},
		{"POST without the header (a form)", pageRequest{method: "POST", path: "/api/check"}, 403},
		{"POST from another site", pageRequest{method: "POST", path: "/api/check",
			header: map[string]string{RequestHeader: "check", "Origin": "http://evil.example"}}, 403},
		{"POST a browser marks cross-site", pageRequest{method: "POST", path: "/api/check",
			header: map[string]string{RequestHeader: "check", "Sec-Fetch-Site": "cross-site"}}, 403},
		{"POST a browser marks same-origin", pageRequest{method: "POST", path: "/api/check",
			header: map[string]string{RequestHeader: "check", "Sec-Fetch-Site": "same-origin"}}, 200},
		{"PUT", pageRequest{method: "PUT", path: "/api/check", header: map[string]string{RequestHeader: "check"}}, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := passed.Load()
			resp, body := tt.req.do(t, srv)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			through := passed.Load() != before
			if page := !strings.HasPrefix(tt.req.path, "/metrics") && !strings.HasPrefix(tt.req.path, "/readyz"); page {
				if through != (tt.want == 200) {
					t.Errorf("reached the page: %v, want %v", through, tt.want == 200)
				}
				if tt.want != 400 && resp.Header.Get("Content-Security-Policy") != ContentSecurityPolicy {
					t.Errorf("Content-Security-Policy %q", resp.Header.Get("Content-Security-Policy"))
				}
			}
		})
	}
	for _, must := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, must) || strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
			t.Errorf("the CSP lacks %q or allows inline code: %s", must, ContentSecurityPolicy)
		}
	}
}

// TestPageAuth: with admin.auth the page and its API need credentials
// (Bearer, or Basic, which browsers send), while /healthz, /readyz and
// /metrics stay open; a run of wrong passwords is cut short.
func TestPageAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	const token = "0123456789abcdef-admin"
	tests := []struct {
		name string
		auth config.AdminAuth
		hdr  map[string]string
		want int
	}{
		{"basic: none", config.AdminAuth{Type: "basic", Username: "ops", PasswordHash: config.Secret(hash)}, nil, 401},
		{"basic: right", config.AdminAuth{Type: "basic", Username: "ops", PasswordHash: config.Secret(hash)}, basic("ops", "right password"), 200},
		{"basic: wrong password", config.AdminAuth{Type: "basic", Username: "ops", PasswordHash: config.Secret(hash)}, basic("ops", "wrong"), 401},
		{"basic: wrong user", config.AdminAuth{Type: "basic", Username: "ops", PasswordHash: config.Secret(hash)}, basic("root", "right password"), 401},
		{"basic: a bearer token", config.AdminAuth{Type: "basic", Username: "ops", PasswordHash: config.Secret(hash)}, bearer("right password"), 401},
		{"bearer: right", config.AdminAuth{Type: "bearer", Token: token}, bearer(token), 200},
		{"bearer: as a browser's basic password", config.AdminAuth{Type: "bearer", Token: token}, basic("anyone", token), 200},
		{"bearer: wrong", config.AdminAuth{Type: "bearer", Token: token}, bearer(token + "x"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not loopback: auth is what lets this page exist at all.
			srv, _ := pageServer(t, "0.0.0.0:9108", config.AdminPage{Page: true, Auth: tt.auth})
			resp, body := pageRequest{path: "/api/status", host: "localhost", header: tt.hdr}.do(t, srv)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
				if resp, _ := (pageRequest{path: open}).do(t, srv); resp.StatusCode != 200 {
					t.Errorf("%s without credentials: got %d, want 200", open, resp.StatusCode)
				}
			}
		})
	}

	t.Run("failures are limited", func(t *testing.T) {
		srv, _ := pageServer(t, "127.0.0.1:9108", config.AdminPage{Page: true, Auth: config.AdminAuth{Type: "bearer", Token: token}})
		var limited bool
		for range failBurst + 1 {
			resp, _ := pageRequest{path: "/", header: bearer("guess")}.do(t, srv)
			limited = resp.StatusCode == http.StatusTooManyRequests
		}
		if !limited {
			t.Fatalf("after %d wrong tokens: not limited", failBurst+1)
		}
		// Unjudged: even the right token waits for the bucket to refill.
		if resp, _ := (pageRequest{path: "/", header: bearer(token)}).do(t, srv); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("right token while limited: got %d, want 429", resp.StatusCode)
		}
	})
}

// TestPageNeedsAuthOffLoopback: a page on a listener that is not
// loopback-only is refused without admin.auth; page: false leaves the
// listener as it was.
func TestPageNeedsAuthOffLoopback(t *testing.T) {
	base := Handler(prometheus.NewRegistry(), func() (bool, string) { return true, "" })
	page := http.NotFoundHandler()
	for _, listen := range []string{":9108", "0.0.0.0:9108", "10.1.2.3:9108", "[::]:9108", "host.example:9108"} {
		if _, err := WithPage(base, page, listen, config.AdminPage{Page: true}); err == nil {
			t.Errorf("%s without auth: no error", listen)
		}
	}
	for _, listen := range []string{"127.0.0.1:9108", "localhost:9108", "[::1]:9108"} {
		if _, err := WithPage(base, page, listen, config.AdminPage{Page: true}); err != nil {
			t.Errorf("%s without auth: %v", listen, err)
		}
	}
	h, err := WithPage(base, page, ":9108", config.AdminPage{Page: false})
	if err != nil || h == nil {
		t.Errorf("page off on :9108: %v", err)
	}
}
