package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
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

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/httprecord"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira"
)

func TestCredentialsPerAuthType(t *testing.T) {
	up := newUpstream(t, false, nil)
	tests := []struct {
		name string
		auth config.Auth
		path string // base path of the site URL
		want string
	}{
		{
			name: "service_account",
			auth: config.Auth{Type: config.AuthServiceAccount, Token: testToken},
			path: "/ex/jira/18cd6e54-b562-4ed3-8a43-ca1fc772b26f",
			want: "Bearer " + testToken,
		},
		{
			name: "bearer",
			auth: config.Auth{Type: config.AuthBearer, Token: testToken},
			want: "Bearer " + testToken,
		},
		{
			name: "basic",
			auth: config.Auth{Type: config.AuthBasic, Email: "me@acme.com", Token: testToken},
			want: "Basic " + base64.StdEncoding.EncodeToString([]byte("me@acme.com:"+testToken)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := testSite(up.URL + tt.path)
			site.Auth = tt.auth
			f := newFront(t, site, Options{})
			resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
			}
			got := up.Last(t)
			if auth := got.Header.Values("Authorization"); len(auth) != 1 || auth[0] != tt.want {
				t.Errorf("Authorization at Jira: got %q, want [%q]", auth, tt.want)
			}
			if want := tt.path + "/rest/api/3/myself"; got.RequestURI != want {
				t.Errorf("path at Jira: got %q, want %q", got.RequestURI, want)
			}
		})
	}
}

// TestRequestHeaderAllowlist (issue 12, finding 1): only the headers a
// Jira client needs reach Jira. Credentials, identity and routing headers,
// method and URL overrides, the broker's own headers and every name
// spelled with "_" (which some front-ends read as "-") are dropped, in any
// case; the site's credentials are set after the filter.
func TestRequestHeaderAllowlist(t *testing.T) {
	up := newUpstream(t, false, nil)
	site := testSite(up.URL)
	site.Allow.Headers = []string{"x-site-extra"}
	f := newFront(t, site, Options{})

	// Raw bytes, so that names arrive in odd cases and nothing is added
	// or folded by a client library.
	dropped := []string{
		"Authorization: Bearer " + connectorToken,
		"authorization: Basic Zm9vOmJhcg==",
		"Cookie: JSESSIONID=abc",
		"Proxy-Authorization: Basic Zm9vOmJhcg==",
		"pRoXy-Custom: 1",
		"Proxy-Connection: keep-alive",
		"Forwarded: for=1.2.3.4;host=evil.example",
		"X-Forwarded-For: 1.2.3.4",
		"X-Forwarded-Host: evil.example",
		"x-forwarded-prefix: /evil",
		"X-Real-IP: 1.2.3.4",
		"X-HTTP-Method-Override: DELETE",
		"X-Original-URL: /secure/admin",
		"X-Rewrite-URL: /secure/admin",
		"Ox-Broker-Site: jira-test",
		"ox-broker-anything: x",
		// Spelled with underscores.
		"X_Forwarded_For: 1.2.3.4",
		"Proxy_Authorization: Basic Zm9vOmJhcg==",
		"X-HTTP-Method_Override: DELETE",
		"X-Original_URL: /secure/admin",
		"Accept_Language: de",
		"X_Atlassian_Token: no-check",
		// Identity headers some front-ends trust.
		"X-Remote-User: admin",
		"X-AUSERNAME: admin",
		"X-Original-URI: /secure/admin",
		"X-Host: evil.example",
		"X-HTTP-Host-Override: evil.example",
		// Anything else.
		"X-Custom: 1",
		"Origin: https://evil.example",
		"Cache-Control: no-cache",
	}
	kept := map[string]string{
		"Accept":                  "application/json",
		"Accept-Language":         "de-DE",
		"If-None-Match":           `"abc"`,
		"If-Modified-Since":       "Sat, 01 Jan 2000 00:00:00 GMT",
		"X-Atlassian-Token":       "no-check",
		"X-ExperimentalApi":       "opt-in",
		"X-Force-Accept-Language": "true",
		"User-Agent":              "ox-connector/1.0",
		"X-Site-Extra":            "added by allow.headers",
	}
	req := "GET /rest/api/3/myself HTTP/1.1\r\nHost: jira.example\r\n"
	for _, h := range dropped {
		req += h + "\r\n"
	}
	for k, v := range kept {
		req += strings.ToLower(k) + ": " + v + "\r\n"
	}
	resp, body := f.raw(t, req+"Connection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	got := up.Last(t).Header
	// The agent's own: the site's credentials, and identity encoding.
	keptNames := map[string]bool{"Authorization": true, "Accept-Encoding": true}
	for k := range kept {
		keptNames[http.CanonicalHeaderKey(k)] = true
	}
	for k, vs := range got {
		if !keptNames[k] {
			t.Errorf("header %s: %q reached Jira", k, vs)
		}
	}
	if auth := got.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+testToken {
		t.Errorf("Authorization at Jira: got %q, want only the site's", auth)
	}
	for k, want := range kept {
		if v := got.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("%s at Jira: got %q, want [%q]", k, v, want)
		}
	}
}

// TestForwardedHeadersEachReachJira: every name of ForwardedHeaders is
// forwarded, so that the documented set is the one in force.
func TestForwardedHeadersEachReachJira(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	hdr := http.Header{}
	for _, k := range ForwardedHeaders {
		if k != "Expect" && k != "Range" && !strings.HasPrefix(k, "If-") && !strings.HasPrefix(k, "Content-") {
			hdr.Set(k, "v-"+strings.ToLower(k))
		}
	}
	f.do(t, "GET", "/rest/api/3/myself", nil, hdr)
	got := up.Last(t).Header
	for k := range hdr {
		if want := "v-" + strings.ToLower(k); got.Get(k) != want {
			t.Errorf("%s at Jira: got %q, want %q", k, got.Get(k), want)
		}
	}
	// The body's headers and the conditional ones, on a request with a body.
	hdr = http.Header{
		"Content-Type": {"application/json"}, "Content-Encoding": {"identity"},
		"If-Match": {`"a"`}, "If-Unmodified-Since": {"Sat, 01 Jan 2000 00:00:00 GMT"},
		"If-Range": {`"a"`}, "Range": {"bytes=0-1"},
	}
	f.do(t, "PUT", "/rest/api/3/issue/ABC-1", strings.NewReader("{}"), hdr)
	got = up.Last(t).Header
	for k, v := range hdr {
		if got.Get(k) != v[0] {
			t.Errorf("%s at Jira: got %q, want %q", k, got.Get(k), v[0])
		}
	}
}

func TestUserAgentWhenAbsent(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	f.raw(t, "GET /rest/api/3/myself HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if got := up.Last(t).Header.Get("User-Agent"); got != defaultUserAgent {
		t.Errorf("User-Agent at Jira: got %q, want %q", got, defaultUserAgent)
	}
}

// TestTrailerAuthorizationNotForwarded: a caller can declare
// "Trailer: Authorization" on a chunked body; Go's server then hands the
// trailer to the handler in Request.Trailer and ReverseProxy would send
// it after the body, past the header hygiene.
func TestTrailerAuthorizationNotForwarded(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.raw(t, "POST /rest/api/3/issue HTTP/1.1\r\nHost: x\r\n"+
		"Transfer-Encoding: chunked\r\nTrailer: Authorization, Cookie\r\nConnection: close\r\n\r\n"+
		"2\r\n{}\r\n0\r\nAuthorization: Bearer "+connectorToken+"\r\nCookie: a=b\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	got := up.Last(t)
	if len(got.Trailer) != 0 {
		t.Errorf("trailers reached Jira: %v", got.Trailer)
	}
	if auth := got.Header.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+testToken {
		t.Errorf("Authorization at Jira: got %q, want only the site's", auth)
	}
	if string(got.Body) != "{}" {
		t.Errorf("body at Jira: got %q, want {}", got.Body)
	}
}

func TestBasePathJoin(t *testing.T) {
	up := newUpstream(t, false, nil)
	tests := []struct {
		base   string // path appended to the upstream's URL
		target string
		want   string // request URI at Jira
	}{
		{"", "/rest/api/3/issue/ABC-1?fields=summary", "/rest/api/3/issue/ABC-1?fields=summary"},
		{"/", "/rest/api/3/myself", "/rest/api/3/myself"},
		{"/jira", "/rest/api/2/issue/ABC-1", "/jira/rest/api/2/issue/ABC-1"},
		{"/jira/", "/rest/api/2/issue/ABC-1", "/jira/rest/api/2/issue/ABC-1"},
		{"/ex/jira/18cd6e54-b562-4ed3-8a43-ca1fc772b26f", "/rest/api/3/issue/ABC-1?fields=summary,status&expand=names",
			"/ex/jira/18cd6e54-b562-4ed3-8a43-ca1fc772b26f/rest/api/3/issue/ABC-1?fields=summary,status&expand=names"},
		// The escaped path is forwarded as it came, escapes and all.
		{"/my%20jira", "/rest/api/3/issue/A%20B", "/my%20jira/rest/api/3/issue/A%20B"},
		{"", "/rest/api/3/issue/%41BC-1/comment", "/rest/api/3/issue/%41BC-1/comment"},
		{"", "/rest/api/3/issue/ABC-1/properties/k%C3%A9y", "/rest/api/3/issue/ABC-1/properties/k%C3%A9y"},
		{"", "/rest/api/3/issue/A:B@C+D", "/rest/api/3/issue/A:B@C+D"},
		{"", "/rest/api/3/search/jql?jql=project%20%3D%20ABC&maxResults=5", "/rest/api/3/search/jql?jql=project%20%3D%20ABC&maxResults=5"},
	}
	for _, tt := range tests {
		t.Run(tt.base+tt.target, func(t *testing.T) {
			f := newFront(t, testSite(up.URL+tt.base), Options{})
			resp, body := f.raw(t, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
			}
			got := up.Last(t)
			if got.RequestURI != tt.want {
				t.Errorf("request URI at Jira: got %q, want %q", got.RequestURI, tt.want)
			}
			if want := strings.TrimPrefix(up.URL, "http://"); got.Host != want {
				t.Errorf("Host at Jira: got %q, want %q", got.Host, want)
			}
		})
	}
}

func TestAbsoluteFormRefused(t *testing.T) {
	up := newUpstream(t, false, nil)
	evil := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	upHost := strings.TrimPrefix(up.URL, "http://")
	for _, target := range []string{
		"http://" + evilHost + "/rest/api/3/myself",
		"https://" + evilHost + "/rest/api/3/myself",
		"http://" + upHost + "/rest/api/3/myself", // even the real upstream
		"HTTP://" + evilHost + "/rest/api/3/myself",
	} {
		t.Run(target, func(t *testing.T) {
			resp, body := f.raw(t, "GET "+target+" HTTP/1.1\r\nHost: "+evilHost+"\r\n"+
				"Ox-Broker-Request-Id: req-abs\r\nConnection: close\r\n\r\n")
			d := wantBrokerError(t, resp, body, brokerhttp.BadRequest)
			if d.RequestID != "req-abs" {
				t.Errorf("request_id: got %q, want req-abs", d.RequestID)
			}
		})
	}
	t.Run("CONNECT", func(t *testing.T) {
		resp, body := f.raw(t, "CONNECT "+evilHost+" HTTP/1.1\r\nHost: "+evilHost+"\r\n\r\n")
		wantBrokerError(t, resp, body, brokerhttp.BadRequest)
	})
	t.Run("asterisk", func(t *testing.T) {
		// Go's server answers "OPTIONS *" itself; it must not get further.
		resp, _ := f.raw(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode >= 300 && resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.BadRequest) {
			t.Errorf("OPTIONS *: got %d %q", resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError))
		}
	})
	if n := up.Count() + evil.Count(); n != 0 {
		t.Errorf("%d requests reached an upstream, want 0", n)
	}
}

func TestHostHeaderIgnored(t *testing.T) {
	up := newUpstream(t, false, nil)
	evil := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	resp, body := f.raw(t, "GET /rest/api/3/myself HTTP/1.1\r\nHost: "+evilHost+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	if got, want := up.Last(t).Host, strings.TrimPrefix(up.URL, "http://"); got != want {
		t.Errorf("Host at Jira: got %q, want %q", got, want)
	}
	if evil.Count() != 0 {
		t.Error("the request went to the host of the Host header")
	}
}

func TestPathAttacksRefused(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	targets := []string{
		"/rest/api/3/issue/../../../secure/admin",
		"/rest/api/3/issue/ABC-1/../../../../secure/admin",
		"/rest/api/3/%2e%2e/x",
		"/rest/api/3/issue/%2E%2e/%2e%2E/project",
		"/rest/api/3/issue/.%2e/x",
		"/rest/api/3/issue/%2e/ABC-1",
		"/rest/api/3/issue/./ABC-1",
		"/rest/api/3/./myself",
		"/rest/api/3/myself/.",
		"/rest/api/3/issue/...",
		"//rest/api/3/myself",
		"/rest//api/3/myself",
		"/rest/api/3/myself/",
		"/rest/api/3/issue/A%2fB",
		"/rest/api/3/issue/A%2FB",
		"/rest/api/3/issue\\..\\..\\secure",
		"/rest/api/3/issue/A%5cB",
		"/rest/api/3/issue/A%5C..%5C..%5Csecure",
		"/rest/api/3/issue/A%00B",
		"/rest/api/3/issue/A%00",
		"/rest/api/3/issue/A%0aB",
		"/rest/api/3/issue/A%0d%0aX-Injected:%201",
		"/rest/api/3/issue/A%7fB",
		"/rest/api/3/issue/..;/..;/secure/admin",
		"/rest/api/3/issue/ABC-1;jsessionid=x",
		"/rest/api/3/issue/A%3bB",
		"/rest/api/3/issue/%252e%252e/x",
		"/rest/api/3/issue/%25%32%65",
		"/rest/api/3/issue/%c0%ae%c0%ae/x",
		"/rest/api/3/issue/%zz",
		"/rest/api/3/issue/A%2",
		"/rest/api/3/issue/A#frag",
		"/rest/api/3/issue/A\xc3\xa9",
		"/rest/api/3/issue/A|B",
		"/rest/api/3/issue/{A}",
		"/rest/api/3/issue/A\tB",
		"/rest/api/3/issue/A\x00B", // Go's server refuses it first
		"/rest/api/3/issue/A\x01B",
		// Near-dot segments (issue 12, finding 3).
		"/rest/api/3/issue/..%20/..%20/secure/admin",
		"/rest/api/3/issue/..%c2%a0/x",
		"/rest/api/3/issue/%e3%80%82%e3%80%82/x",
		"/rest/api/3/issue/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecure",
		"/rest/api/3/issue/..::$DATA/x",
		"/rest/api/3/myself.",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			resp, body := f.raw(t, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status: got %d, want 400 (%s)", resp.StatusCode, body)
			}
			// Go's server refuses some targets before the proxy sees
			// them, without the broker's error header; when the proxy
			// answers, it must say bad_request.
			switch code := resp.Header.Get(brokerhttp.HeaderError); code {
			case "":
				t.Logf("refused by Go's server: %s", body)
			case string(brokerhttp.BadRequest):
			default:
				t.Errorf("%s: got %q, want %q", brokerhttp.HeaderError, code, brokerhttp.BadRequest)
			}
		})
	}
	if n := up.Count(); n != 0 {
		t.Errorf("%d requests reached Jira, want 0", n)
	}
}

func TestNotAllowedRefused(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	for _, tt := range []struct{ method, target string }{
		{"POST", "/rest/api/3/user"},           // createUser: manage:jira-configuration
		{"GET", "/rest/api/3/auditing/record"}, // manage:jira-configuration
		{"DELETE", "/rest/api/3/project/ABC"},  // deleteProject: manage:jira-configuration
		{"GET", "/rest/api/3/issue"},
		{"GET", "/rest/api/1/myself"},
		{"POST", "/rest/api/3/myself"},
		{"GET", "/plugins/servlet/oauth/users"},
		{"GET", "/secure/admin"},
		{"GET", "/"},
		{"HEAD", "/rest/api/3/auditing/record"}, // refused as its GET is
		{"OPTIONS", "/rest/api/3/myself"},
		{"GET", "/rest/api/3/issueX/1"},
	} {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp, body := f.do(t, tt.method, tt.target, nil, nil)
			if tt.method == "HEAD" {
				if resp.StatusCode != http.StatusForbidden || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.PathNotAllowed) {
					t.Errorf("got %d %q, want 403 path_not_allowed", resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError))
				}
				return
			}
			d := wantBrokerError(t, resp, body, brokerhttp.PathNotAllowed)
			if want := tt.method + " " + tt.target; !strings.Contains(d.Message, want) {
				t.Errorf("message %q does not name %q", d.Message, want)
			}
			if d.RequestID != "req-"+t.Name() {
				t.Errorf("request_id: got %q, want %q", d.RequestID, "req-"+t.Name())
			}
		})
	}
	if n := up.Count(); n != 0 {
		t.Errorf("%d requests reached Jira, want 0", n)
	}
}

// TestContentLengthWithTransferEncoding documents what Go's server does
// with a request carrying both: it follows RFC 9112 (Transfer-Encoding
// wins, Content-Length is deleted) before the handler runs, so the Proxy
// cannot see the conflict; the request it forwards is unambiguous and
// nothing is smuggled. The Proxy's own check refuses the conflict when it
// gets such a request by another route.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})

	t.Run("through http.Server", func(t *testing.T) {
		smuggled := "GET /rest/api/3/serverInfo HTTP/1.1\r\nHost: x\r\n\r\n"
		req := "POST /rest/api/3/issue HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			"2\r\n{}\r\n0\r\n\r\n" + smuggled
		resp, body := f.raw(t, req)
		switch {
		case resp.StatusCode == http.StatusBadRequest:
			if up.Count() != 0 {
				t.Error("refused, but a request reached Jira")
			}
		case resp.StatusCode == 200:
			t.Log("Go's server dropped Content-Length; the proxy forwarded the chunked body alone")
			got := up.Last(t)
			if up.Count() != 1 || got.Method != "POST" || string(got.Body) != "{}" {
				t.Errorf("Jira saw %d requests, last %s %q with body %q; want one POST with body {}", up.Count(), got.Method, got.RequestURI, got.Body)
			}
		default:
			t.Errorf("status: got %d (%s), want 400 or a clean forward", resp.StatusCode, body)
		}
	})
	t.Run("handler", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/rest/api/3/issue", strings.NewReader("{}"))
		r.Header.Set("Content-Length", "2")
		r.Header.Set("Transfer-Encoding", "chunked")
		r.TransferEncoding = []string{"chunked"}
		w := httptest.NewRecorder()
		f.p.ServeHTTP(w, r)
		wantBrokerError(t, w.Result(), w.Body.Bytes(), brokerhttp.BadRequest)
	})
	t.Run("unsupported transfer coding", func(t *testing.T) {
		n := up.Count()
		resp, _ := f.raw(t, "POST /rest/api/3/issue HTTP/1.1\r\nHost: x\r\n"+
			"Content-Length: 4\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
		if resp.StatusCode < 400 || up.Count() != n {
			t.Errorf("got %d with %d requests at Jira, want a refusal and none", resp.StatusCode, up.Count()-n)
		}
	})
}

func TestDirectHandlerWithoutRequestURI(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	// A client-side request, as a caller might wrongly pass one: no
	// RequestURI, a URL with a host.
	r, _ := http.NewRequest("GET", "http://evil.example/rest/api/3/myself", nil)
	w := httptest.NewRecorder()
	f.p.ServeHTTP(w, r)
	wantBrokerError(t, w.Result(), w.Body.Bytes(), brokerhttp.BadRequest)
	if up.Count() != 0 {
		t.Error("request reached Jira")
	}
}

func TestUpgradeRefused(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.raw(t, "GET /rest/api/3/myself HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	wantBrokerError(t, resp, body, brokerhttp.BadRequest)
	if up.Count() != 0 {
		t.Error("request reached Jira")
	}
}

func TestBodyTooLarge(t *testing.T) {
	up := newUpstream(t, false, nil)
	site := testSite(up.URL)
	site.MaxBody = 1024
	f := newFront(t, site, Options{})

	t.Run("Content-Length", func(t *testing.T) {
		resp, body := f.do(t, "POST", "/rest/api/3/issue", bytes.NewReader(make([]byte, 1025)), nil)
		wantBrokerError(t, resp, body, brokerhttp.TooLarge)
		if up.Count() != 0 {
			t.Error("request reached Jira")
		}
	})
	t.Run("chunked", func(t *testing.T) {
		// The limit is found while the body streams to Jira, so Jira may
		// have seen the start of a request that then broke off; the
		// caller gets too_large all the same.
		resp, body := f.do(t, "POST", "/rest/api/3/issue", io.MultiReader(bytes.NewReader(make([]byte, 4096))), nil)
		wantBrokerError(t, resp, body, brokerhttp.TooLarge)
		for _, s := range up.All() {
			if len(s.Body) > 1024 {
				t.Errorf("Jira received %d body bytes, more than max_body", len(s.Body))
			}
		}
	})
	t.Run("chunked at the limit", func(t *testing.T) {
		// A body of its own, so that it cannot be mistaken for the cut
		// one above, which Jira may record after this request starts.
		want := bytes.Repeat([]byte("a"), 1024)
		resp, body := f.do(t, "POST", "/rest/api/3/issue", io.MultiReader(bytes.NewReader(want)), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
		}
		if !slices.ContainsFunc(up.All(), func(s httprecord.Request) bool { return bytes.Equal(s.Body, want) }) {
			t.Error("Jira did not get the 1024-byte body whole")
		}
	})
}

func TestBrokenRequestBody(t *testing.T) {
	up := newUpstream(t, false, nil)
	f := newFront(t, testSite(up.URL), Options{})
	// Malformed chunked encoding: a problem of the caller, not of Jira.
	resp, body := f.raw(t, "POST /rest/api/3/issue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"zz\r\n{}\r\n0\r\n\r\n")
	wantBrokerError(t, resp, body, brokerhttp.BadRequest)
}

func TestSlowUpstreamTimesOut(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	site := testSite(up.URL)
	site.Timeout = 200 * time.Millisecond
	f := newFront(t, site, Options{})
	start := time.Now()
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
	d := wantBrokerError(t, resp, body, brokerhttp.UpstreamTimeout)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v, want about the 200ms timeout", el)
	}
	if !strings.Contains(d.Message, "Jira") {
		t.Errorf("message %q does not say Jira timed out", d.Message)
	}
}

// TestTimeoutBoundsHeadersOnly: a download that streams for longer than
// the timeout, after its headers came in time, is not cut.
func TestTimeoutBoundsHeadersOnly(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for range 5 {
			w.Write(bytes.Repeat([]byte("x"), 1000))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	site := testSite(up.URL)
	site.Timeout = 200 * time.Millisecond
	f := newFront(t, site, Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/attachment/content/10001", nil, nil)
	if resp.StatusCode != 200 || len(body) != 5000 {
		t.Errorf("got %d with %d bytes, want 200 with 5000", resp.StatusCode, len(body))
	}
}

func TestClosedPortUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := newFront(t, testSite("http://"+addr), Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
	d := wantBrokerError(t, resp, body, brokerhttp.UpstreamUnreachable)
	if want := "cannot reach Jira at " + addr; !strings.Contains(d.Message, want) {
		t.Errorf("message %q does not contain %q", d.Message, want)
	}
}

func TestUpstreamTLS(t *testing.T) {
	up := newUpstream(t, true, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(up.URL)

	t.Run("unknown CA", func(t *testing.T) {
		f := newFront(t, testSite(up.URL), Options{})
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		d := wantBrokerError(t, resp, body, brokerhttp.UpstreamTLS)
		if !strings.Contains(d.Message, "tls.ca_file") || !strings.Contains(d.Message, "unknown authority") {
			t.Errorf("message %q does not name the problem and tls.ca_file", d.Message)
		}
	})
	t.Run("ca_file", func(t *testing.T) {
		site := testSite(up.URL)
		site.TLS.CAFile = caFile
		f := newFront(t, site, Options{})
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
		}
		if got := up.Last(t).Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("Authorization at Jira: got %q", got)
		}
	})
	t.Run("ca_file wrong name", func(t *testing.T) {
		site := testSite("https://localhost:" + u.Port())
		site.TLS.CAFile = caFile
		f := newFront(t, site, Options{})
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		d := wantBrokerError(t, resp, body, brokerhttp.UpstreamTLS)
		if !strings.Contains(d.Message, "not valid for localhost") {
			t.Errorf("message %q does not name the host mismatch", d.Message)
		}
	})
	t.Run("insecure_skip_verify", func(t *testing.T) {
		var buf syncBuffer
		site := testSite(up.URL)
		site.TLS.InsecureSkipVerify = true
		f := newFront(t, site, Options{Logger: slogTo(&buf)})
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
		}
		if n := strings.Count(buf.String(), "level=WARN msg=\"TLS certificate verification"); n != 1 {
			t.Errorf("got %d warnings about turned-off verification, want 1:\n%s", n, buf.String())
		}
	})
	t.Run("https to a plain http port", func(t *testing.T) {
		plain := newUpstream(t, false, nil)
		f := newFront(t, testSite(strings.Replace(plain.URL, "http://", "https://", 1)), Options{})
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		wantBrokerError(t, resp, body, brokerhttp.UpstreamTLS)
	})
}

func TestSetCookieStripped(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Set-Cookie", "JSESSIONID=secret-session; Path=/; HttpOnly")
		h.Add("Set-Cookie", "atlassian.xsrf.token=x; Path=/")
		h.Set("Ox-Broker-Error", "unknown_site")
		h.Set("X-Arequestid", "123")
		h.Set("Trailer", "Set-Cookie, X-Checksum")
		io.WriteString(w, `{"ok":true}`)
		h.Set("Set-Cookie", "late=secret-session")
		h.Set("X-Checksum", "abc")
	})
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Fatalf("got %d %q, want 200 {\"ok\":true}", resp.StatusCode, body)
	}
	if v := resp.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Errorf("Set-Cookie reached the caller: %q", v)
	}
	if v := resp.Trailer.Values("Set-Cookie"); len(v) != 0 {
		t.Errorf("Set-Cookie trailer reached the caller: %q", v)
	}
	if v := resp.Header.Get(brokerhttp.HeaderError); v != "" {
		t.Errorf("Jira's %s reached the caller: %q", brokerhttp.HeaderError, v)
	}
	if v := resp.Header.Get("X-Arequestid"); v != "123" {
		t.Errorf("X-Arequestid: got %q, want 123", v)
	}
	if v := resp.Trailer.Get("X-Checksum"); v != "abc" {
		t.Errorf("X-Checksum trailer: got %q, want abc", v)
	}
}

func TestJiraErrorsPassThrough(t *testing.T) {
	tests := []struct {
		status int
		header map[string]string
		body   string
	}{
		{429, map[string]string{"Retry-After": "17", "X-Ratelimit-Remaining": "0"}, `{"errorMessages":["Rate limit exceeded"]}`},
		{404, nil, `{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}`},
		{401, map[string]string{"Www-Authenticate": `OAuth realm="https://x"`}, `{"message":"Client must be authenticated"}`},
		{500, nil, "<html>boom</html>"},
		{503, map[string]string{"Retry-After": "5"}, ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			f := newFront(t, testSite(up.URL), Options{})
			resp, body := f.do(t, "GET", "/rest/api/3/issue/ABC-1", nil, nil)
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			for k, v := range tt.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: got %q, want %q", k, got, v)
				}
			}
			if v := resp.Header.Get(brokerhttp.HeaderError); v != "" {
				t.Errorf("Jira's own %d carries %s %q", tt.status, brokerhttp.HeaderError, v)
			}
		})
	}
}

func TestOverloaded(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	site := testSite(up.URL)
	site.MaxConcurrent = 1
	f := newFront(t, site, Options{QueueTimeout: 100 * time.Millisecond})

	first := make(chan int, 1)
	go func() {
		resp, _ := f.do(t, "GET", "/rest/api/3/issue/ABC-1", nil, nil)
		first <- resp.StatusCode
	}()
	<-arrived

	resp, body := f.do(t, "GET", "/rest/api/3/issue/ABC-2", nil, nil)
	wantBrokerError(t, resp, body, brokerhttp.Overloaded)

	close(release)
	if got := <-first; got != 200 {
		t.Errorf("first request: got %d, want 200", got)
	}
	// The slot is free again.
	go func() { <-arrived }()
	if resp, body := f.do(t, "GET", "/rest/api/3/issue/ABC-3", nil, nil); resp.StatusCode != 200 {
		t.Errorf("after release: got %d (%s), want 200", resp.StatusCode, body)
	}
	if up.Count() != 2 {
		t.Errorf("Jira saw %d requests, want 2", up.Count())
	}
}

// TestQueuedRequestGetsSlot: a request that waits less than QueueTimeout
// for a slot is served.
func TestQueuedRequestGetsSlot(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	})
	site := testSite(up.URL)
	site.MaxConcurrent = 1
	f := newFront(t, site, Options{QueueTimeout: 5 * time.Second})
	done := make(chan int, 3)
	for range 3 {
		go func() {
			resp, _ := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
			done <- resp.StatusCode
		}()
	}
	for range 3 {
		if got := <-done; got != 200 {
			t.Errorf("status: got %d, want 200", got)
		}
	}
}

func TestCallerGoesAway(t *testing.T) {
	arrived := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	var buf syncBuffer
	f := newFront(t, testSite(up.URL), Options{Logger: slogTo(&buf)})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.addr+"/rest/api/3/myself", nil)
	req.Header.Set(brokerhttp.HeaderRequestID, "req-gone")
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := f.client.Do(req); err == nil {
		t.Fatal("request succeeded, want it canceled")
	}
	testwait.For(t, 5*time.Second, "the log line of request req-gone", func() bool { return strings.Contains(buf.String(), "request_id=req-gone") })
	if line := buf.String(); !strings.Contains(line, "canceled=true") {
		t.Errorf("audit line does not say canceled:\n%s", line)
	}
}

func TestAuditLog(t *testing.T) {
	up := newUpstream(t, false, nil)
	var buf syncBuffer
	f := newFront(t, testSite(up.URL), Options{Logger: slogTo(&buf)})
	f.do(t, "GET", "/rest/api/3/issue/ABC-1?fields=summary", nil, http.Header{
		brokerhttp.HeaderRequestID: {"req-ok"}, "Cookie": {"c=secretcookie"},
	})
	f.do(t, "DELETE", "/rest/api/3/project/SECRETPROJ", nil, http.Header{brokerhttp.HeaderRequestID: {"req-denied"}})
	f.do(t, "GET", "/secure/admin/SECRETPATH", nil, http.Header{brokerhttp.HeaderRequestID: {"req-unknown"}})
	f.raw(t, "GET /rest/api/3/issue/../../x HTTP/1.1\r\nHost: x\r\nOx-Broker-Request-Id: req-bad\r\n\r\n")
	testwait.For(t, 5*time.Second, "four request log lines", func() bool { return strings.Count(buf.String(), "msg=request ") == 4 })
	out := buf.String()
	for _, want := range []string{
		// Known operations are logged by template: paths carry user data.
		`request_id=req-ok method=GET path=/rest/api/3/issue/{issueIdOrKey} operation=getIssue status=200 bytes_in=0 bytes_out=11 `,
		`request_id=req-denied method=DELETE path=/rest/api/3/project/{projectIdOrKey} operation=deleteProject status=403 code=path_not_allowed `,
		// An unknown path is kept as it came, for the security audit.
		`request_id=req-unknown method=GET path=/secure/admin/SECRETPATH status=403 code=path_not_allowed `,
		`request_id=req-bad method=GET path=/rest/api/3/issue/../../x status=400 code=bad_request `,
		`site=jira-test`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"fields=summary", "secretcookie", connectorToken, "Authorization", "ABC-1", "SECRETPROJ"} {
		if strings.Contains(out, never) {
			t.Errorf("log contains %q:\n%s", never, out)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	tests := []struct {
		name   string
		modify func(*config.Site)
		want   string // in the error
	}{
		{"empty url", func(s *config.Site) { s.URL = "" }, "url"},
		{"bad url", func(s *config.Site) { s.URL = "https://user:hunter2@[::1" }, "url"},
		{"ftp", func(s *config.Site) { s.URL = "ftp://jira.example.com" }, "scheme"},
		{"relative", func(s *config.Site) { s.URL = "/jira" }, "url: scheme"},
		{"no host", func(s *config.Site) { s.URL = "https:///jira" }, "absolute"},
		{"user info", func(s *config.Site) { s.URL = "https://me:hunter2@jira.example.com" }, "user info"},
		{"query", func(s *config.Site) { s.URL = "https://jira.example.com/?a=b" }, "query"},
		{"traversal in base", func(s *config.Site) { s.URL = "https://jira.example.com/a/../b" }, "url"},
		{"unknown auth", func(s *config.Site) { s.Auth.Type = "oauth" }, "auth.type"},
		{"no token", func(s *config.Site) { s.Auth.Token = "" }, "token"},
		{"basic without email", func(s *config.Site) { s.Auth.Type = config.AuthBasic }, "auth.email"},
		{"missing ca_file", func(s *config.Site) { s.TLS.CAFile = filepath.Join(dir, "nope.pem") }, "tls.ca_file"},
		{"ca_file without certificates", func(s *config.Site) { s.TLS.CAFile = garbage }, "no PEM certificate"},
		{"bad proxy", func(s *config.Site) { s.Proxy = "http://me:hunter2@[::1" }, "proxy"},
		{"proxy scheme", func(s *config.Site) { s.Proxy = "ftp://me:hunter2@proxy:21" }, "proxy"},
		{"negative timeout", func(s *config.Site) { s.Timeout = -1 }, "timeout"},
		{"negative max_body", func(s *config.Site) { s.MaxBody = -1 }, "max_body"},
		{"allow.headers with _", func(s *config.Site) { s.Allow.Headers = []string{"X_Custom"} }, `allow.headers[0] "X_Custom"`},
		{"allow.headers Cookie", func(s *config.Site) { s.Allow.Headers = []string{"X-Ok", "cookie"} }, `allow.headers[1] "cookie"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := testSite("https://jira.example.com")
			tt.modify(&site)
			p, err := New(site, Options{Logger: testLogger})
			if err == nil {
				p.Close()
				t.Fatal("New succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, `site "jira-test"`) {
				t.Errorf("error %q does not name the site and %q", msg, tt.want)
			}
			if strings.Contains(msg, "hunter2") || strings.Contains(msg, testToken) {
				t.Errorf("error %q holds a secret", msg)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	site := testSite("https://jira.example.com/jira/")
	site.Timeout, site.MaxConcurrent, site.MaxBody = 0, 0, 0
	p, err := New(site, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.timeout != DefaultTimeout || cap(p.sem) != DefaultMaxConcurrent || p.maxBody != DefaultMaxBody || p.queueTimeout != DefaultQueueTimeout {
		t.Errorf("got timeout %v, max_concurrent %d, max_body %d, queue %v; want the defaults", p.timeout, cap(p.sem), p.maxBody, p.queueTimeout)
	}
	if p.transport.ResponseHeaderTimeout != DefaultTimeout || p.transport.MaxIdleConnsPerHost != DefaultMaxConcurrent ||
		p.transport.TLSClientConfig.MinVersion != tls.VersionTLS12 || !p.transport.ForceAttemptHTTP2 {
		t.Errorf("transport not set up as documented: %+v", p.transport)
	}
	if p.basePath != "/jira" || p.hostport != "jira.example.com:443" {
		t.Errorf("got base path %q, hostport %q", p.basePath, p.hostport)
	}
}

// slogTo returns a logger that writes to w as well as to the run's log.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}),
		testLogger.Handler(),
	))
}

// recordingPolicy allows everything and remembers what it was asked.
type recordingPolicy struct {
	mu    sync.Mutex // guards asked
	asked []string
}

func (r *recordingPolicy) Match(method, cleanPath string) (jira.Decision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, method+" "+cleanPath)
	return jira.Decision{OperationID: "anything", Template: cleanPath}, nil
}

func TestPolicyGetsDecodedPathWithoutBase(t *testing.T) {
	up := newUpstream(t, false, nil)
	pol := &recordingPolicy{}
	f := newFront(t, testSite(up.URL+"/ex/jira/abc"), Options{Policy: pol})
	resp, body := f.raw(t, "DELETE /rest/agile/1.0/board/%41%20B HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", resp.StatusCode, body)
	}
	if want := []string{"DELETE /rest/agile/1.0/board/A B"}; !slices.Equal(pol.asked, want) {
		t.Errorf("policy asked %q, want %q", pol.asked, want)
	}
	if got, want := up.Last(t).RequestURI, "/ex/jira/abc/rest/agile/1.0/board/%41%20B"; got != want {
		t.Errorf("request URI at Jira: got %q, want %q", got, want)
	}
}

// TestResponseBrokenMidBody: when Jira's body breaks off after the
// headers went out, the caller's connection is aborted (it cannot be told
// otherwise) and the audit line says so.
func TestResponseBrokenMidBody(t *testing.T) {
	for _, tt := range []struct {
		name string
		site func(string) config.Site
		head string
	}{
		{"passed through", testSite, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little"},
		// A small answer whose links are rewritten is read whole first
		// (holdWhole): its break must still reach the caller.
		{"held to be rewritten", linkSite, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"self\":\"http://jira/jira/rest/api/3/issue/1\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				c, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				brw.WriteString(tt.head)
				brw.Flush()
			})
			var buf syncBuffer
			f := newFront(t, tt.site(up.URL), Options{Broker: testBroker, Logger: slogTo(&buf)})
			req, _ := http.NewRequest("GET", "http://"+f.addr+"/rest/api/3/issue/ABC-1", nil)
			req.Header.Set(brokerhttp.HeaderRequestID, "req-broken")
			req.Header.Set(brokerhttp.HeaderPublicBase, testPublic)
			// Depending on what the server had flushed, the caller sees the
			// connection close before the headers or in the body.
			resp, err := f.client.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Error("the caller read a complete response, want an error")
			}
			testwait.For(t, 5*time.Second, "the log line of request req-broken", func() bool { return strings.Contains(buf.String(), "request_id=req-broken") })
			if line := buf.String(); !strings.Contains(line, "status=200") || !strings.Contains(line, "aborted=true") {
				t.Errorf("audit line does not say aborted:\n%s", line)
			}
		})
	}
}

// TestHeadForwarded (issue 11, item 2): HEAD reaches Jira wherever GET
// would, and OPTIONS stays refused.
func TestHeadForwarded(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "11")
		if r.Method != "HEAD" {
			io.WriteString(w, `{"ok":true}`)
		}
	})
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.do(t, "HEAD", "/rest/api/3/issue/ABC-1", nil, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 11 {
		t.Errorf("HEAD: got %d, %d bytes, Content-Length %d; want 200, no body, 11", resp.StatusCode, len(body), resp.ContentLength)
	}
	if got := up.Last(t); got.Method != "HEAD" || got.RequestURI != "/rest/api/3/issue/ABC-1" {
		t.Errorf("Jira saw %s %s, want HEAD /rest/api/3/issue/ABC-1", got.Method, got.RequestURI)
	}
	n := up.Count()
	resp, body = f.do(t, "OPTIONS", "/rest/api/3/issue/ABC-1", nil, nil)
	wantBrokerError(t, resp, body, brokerhttp.PathNotAllowed)
	resp, body = f.do(t, "HEAD", "/rest/api/3/user", nil, nil) // GET /user needs read:jira-user: granted
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /rest/api/3/user: got %d %s", resp.StatusCode, body)
	}
	if up.Count() != n+1 {
		t.Errorf("Jira saw %d more requests, want 1 (OPTIONS refused)", up.Count()-n)
	}
}

// TestSlowBodiesFreeTheirSlots (issue 12, "Also try"): callers that take
// every max_concurrent slot and then send their bodies slowly hold the
// site for as long as they want, unless a body that falls silent is cut.
// Here two silent bodies take both slots: others get overloaded, with one
// warning however many are refused; once the bodies have been silent for
// the stall limit they are answered 400 and their connections closed, and
// the site serves again.
func TestSlowBodiesFreeTheirSlots(t *testing.T) {
	// The stall limit is far above the time the three refusals take
	// (3 × QueueTimeout), so that they find both slots taken.
	const stall = 3 * time.Second
	up := newUpstream(t, false, nil)
	site := testSite(up.URL)
	site.MaxConcurrent = 2
	var buf syncBuffer
	f := newFrontStall(t, site, Options{Logger: slogTo(&buf), QueueTimeout: 50 * time.Millisecond}, stall)

	type slow struct {
		c  net.Conn
		br *bufio.Reader
	}
	var slows []slow
	for range 2 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /rest/api/3/issue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"fields\":")
		slows = append(slows, slow{c, bufio.NewReader(c)})
	}
	testwait.For(t, 5*time.Second, "both slots taken", func() bool { return len(f.p.sem) == 2 })

	for range 3 {
		resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
		wantBrokerError(t, resp, body, brokerhttp.Overloaded)
	}
	if n := strings.Count(buf.String(), "are refused with overloaded"); n != 1 {
		t.Errorf("got %d overload warnings for 3 refusals, want 1:\n%s", n, buf.String())
	}

	for _, s := range slows {
		resp, err := http.ReadResponse(s.br, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		d := wantBrokerError(t, resp, body, brokerhttp.BadRequest)
		if !strings.Contains(d.Message, "no byte of the request body arrived for 3s") {
			t.Errorf("message %q does not say the body stalled", d.Message)
		}
		if _, err := s.br.ReadByte(); err == nil {
			t.Error("the connection of a stalled body is still open")
		}
	}
	testwait.For(t, 5*time.Second, "both slots free", func() bool { return len(f.p.sem) == 0 })
	if resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil); resp.StatusCode != 200 {
		t.Errorf("after the stalled bodies: got %d %s, want 200", resp.StatusCode, body)
	}
}

// TestTricklingAnswerStreams: the proxy delays the flushes of a chunked
// answer (brokerhttp.DelayedFlush) but does not hold them: the first part
// of an answer reaches the caller while Jira is still writing the rest.
func TestTricklingAnswerStreams(t *testing.T) {
	firstSeen := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"part":1}`+"\n")
		http.NewResponseController(w).Flush()
		select { // the rest only once the caller has the first part
		case <-firstSeen:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, `{"part":2}`+"\n")
	})
	f := newFront(t, testSite(up.URL), Options{})
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/rest/api/3/myself", nil)
	req.Header.Set(brokerhttp.HeaderSite, "jira-test")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	start := time.Now()
	line, err := br.ReadString('\n')
	if err != nil || line != `{"part":1}`+"\n" {
		t.Fatalf("first part: got %q, %v", line, err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the first part came only after %s: the proxy held it until Jira finished", waited)
	}
	close(firstSeen)
	if rest, _ := io.ReadAll(br); string(rest) != `{"part":2}`+"\n" {
		t.Errorf("second part: got %q", rest)
	}
}

// TestBadURLErrorsHideTheURL: a site's url or proxy that does not parse
// is reported by its key and url.Parse's reason, never quoted: it may
// hold a password.
func TestBadURLErrorsHideTheURL(t *testing.T) {
	for _, tt := range []struct {
		key   string
		parse func(string) (*url.URL, error)
	}{
		{"url", parseBaseURL},
		{"proxy", parseProxyURL},
	} {
		_, err := tt.parse("https://user:s3cret@jira%zz.example/")
		if err == nil || !strings.HasPrefix(err.Error(), tt.key+": not a valid URL: ") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: got %v, want %q and why, without the URL", tt.key, err, tt.key+": not a valid URL")
		}
	}
}
