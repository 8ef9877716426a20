package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// testBroker and testPublic are what the gateway would send: the broker
// id is the agent's, the public base comes with each call.
const (
	testBroker = "acme"
	testPublic = "https://gw.example"
	// testSiteREST is where the test site's links must point.
	testSiteREST = testPublic + "/b/" + testBroker + "/jira-test/rest/"
)

// basicSite returns testSite with basic auth, whose credential has more
// forms (email:token, its base64).
func basicSite(baseURL string) config.Site {
	s := testSite(baseURL)
	s.Auth = config.Auth{Type: config.AuthBasic, Email: "me@acme.com", Token: testToken}
	return s
}

// reflect answers with the request's Authorization in a header and in
// the body, as a misconfigured Jira or a proxy in front of it might.
func reflectAuth(bodyFmt string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Authorization", auth)
		io.WriteString(w, strings.ReplaceAll(bodyFmt, "AUTH", auth))
	}
}

// TestReflectedCredentialRemoved: whatever form of the site's credential
// Jira reflects, in a header or a body, none reaches the caller; each is
// replaced by the marker. It fails without the response scrub.
func TestReflectedCredentialRemoved(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("me@acme.com:" + testToken))
	tests := []struct {
		name string
		site func(string) config.Site
		h    http.HandlerFunc
	}{
		{"bearer header and JSON body", testSite, reflectAuth(`{"displayName":"AUTH"}`)},
		{"basic header and JSON body", basicSite, reflectAuth(`{"displayName":"AUTH"}`)},
		{"basic raw email:token", basicSite, func(w http.ResponseWriter, r *http.Request) {
			email, token, _ := r.BasicAuth()
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "you are "+email+":"+token)
		}},
		{"JSON-escaped base64", basicSite, func(w http.ResponseWriter, r *http.Request) {
			_, enc, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"auth":"Basic `+strings.ReplaceAll(enc, "/", `\/`)+`"}`)
		}},
		{"token in a header name", testSite, func(w http.ResponseWriter, r *http.Request) {
			_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			w.Header().Set("X-"+tok, "1")
			io.WriteString(w, "ok")
		}},
		{"binary body", testSite, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(append([]byte{0, 1, 2}, r.Header.Get("Authorization")...))
		}},
		{"gzip body", testSite, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, `{"displayName":"`+r.Header.Get("Authorization")+`"}`)
			zw.Close()
		}},
		{"trailer", testSite, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Who")
			io.WriteString(w, "ok")
			w.Header().Set("X-Who", r.Header.Get("Authorization"))
		}},
	}
	if strings.Contains(b64, "/") {
		t.Logf("the test credential's base64 has a /: %s", b64)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, false, tt.h)
			var logBuf syncBuffer
			obs := &filterCounts{}
			f := newFront(t, tt.site(up.URL), Options{Logger: slogTo(&logBuf), Observer: obs})
			resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
			// f.do has checked that no form of the token is in the
			// response; check that the marker is where it was.
			var all strings.Builder
			resp.Header.Write(&all)
			resp.Trailer.Write(&all)
			all.Write(body)
			if strings.Contains(all.String(), testToken[:20]) {
				t.Errorf("part of the token reached the caller:\n%s", all.String())
			}
			if tt.name != "token in a header name" && !strings.Contains(all.String(), redactionMark) {
				t.Errorf("no %s marker in the response:\n%s", redactionMark, all.String())
			}
			if obs.credentials() == 0 {
				t.Error("the observer was not told of the credential")
			}
			testwait.For(t, 5*time.Second, "the log line about the credential", func() bool { return strings.Contains(logBuf.String(), "held the site's credential") })
		})
	}
}

// TestReflectedCredentialSplitAcrossReads: Jira flushes the body in the
// middle of the token; the two halves still make one match.
func TestReflectedCredentialSplitAcrossReads(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		cut := len(auth) - 9
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"displayName":"`+auth[:cut])
		http.NewResponseController(w).Flush()
		io.WriteString(w, auth[cut:]+`","n":`+strings.Repeat("1", 40<<10)+`}`)
	})
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
	var me struct{ DisplayName string }
	if err := json.Unmarshal(body, &me); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if want := "Bearer " + redacted(len(testToken)); me.DisplayName != want {
		t.Errorf("displayName: got %q, want %q", me.DisplayName, want)
	}
	if resp.ContentLength != -1 && resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for a body of %d bytes", resp.ContentLength, len(body))
	}
}

// TestScrubKeepsLength: removing the credential from a body Jira sent
// with a Content-Length keeps that length, so an attachment keeps its
// size and ranges stay true.
func TestScrubKeepsLength(t *testing.T) {
	payload := append(bytes.Repeat([]byte{0xfe}, 1000), "Bearer "+testToken+" tail"...)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	})
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/attachment/content/10000", nil, nil)
	if resp.ContentLength != int64(len(payload)) || len(body) != len(payload) {
		t.Errorf("Content-Length %d, body %d bytes; want both %d", resp.ContentLength, len(body), len(payload))
	}
}

// filterCounts is an Observer that keeps what ObserveFiltered was told.
type filterCounts struct {
	mu           sync.Mutex // guards the fields below
	links, creds int
}

func (f *filterCounts) ObserveRequest(string, int, brokerhttp.Code, time.Duration) {}

func (f *filterCounts) ObserveFiltered(_ string, links, credentials int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links += links
	f.creds += credentials
}

func (f *filterCounts) credentials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creds
}

func (f *filterCounts) rewritten() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links
}

// linkSite is a site whose links are rewritten, under a context path as
// a Data Center site may be.
func linkSite(upURL string) config.Site {
	s := testSite(upURL + "/jira")
	s.RewriteLinks = true
	return s
}

// jiraLinks answers as Jira does with absolute links to itself: base is
// the URL it was called through, with the context path.
func jiraLinks(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host + "/jira"
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Location", base+"/rest/api/3/issue/10001")
	h.Set("Content-Location", "/jira/rest/api/3/issue/10001")
	h.Set("Link", "<"+base+"/rest/api/3/project/search?startAt=2>; rel=\"next\"")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"self":"`+base+`/rest/api/3/issue/10001",`+
		`"escaped":"`+strings.ReplaceAll(base, "/", `\/`)+`\/rest\/api\/3\/issue\/10001",`+
		`"nextPage":"`+base+`/rest/api/3/project/search?startAt=2&maxResults=2",`+
		`"browse":"`+base+`/browse/ABC-1",`+
		`"avatar":"https://avatar-management.services.atlassian.com/a.png"}`)
}

// TestLinksRewritten: Jira's links to its REST API, in JSON bodies and in
// Location, Content-Location and Link, point through the gateway; human
// links (/browse/) and other hosts are left alone. It fails without the
// link rewriting.
func TestLinksRewritten(t *testing.T) {
	up := newUpstream(t, false, jiraLinks)
	obs := &filterCounts{}
	f := newFront(t, linkSite(up.URL), Options{Broker: testBroker, Observer: obs})
	hdr := http.Header{brokerhttp.HeaderPublicBase: {testPublic}}
	resp, body := f.do(t, "POST", "/rest/api/3/issue", strings.NewReader(`{}`), hdr)
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	base := up.URL + "/jira"
	want := map[string]string{
		"self":     testSiteREST + "api/3/issue/10001",
		"escaped":  testSiteREST + "api/3/issue/10001",
		"nextPage": testSiteREST + "api/3/project/search?startAt=2&maxResults=2",
		"browse":   base + "/browse/ABC-1",
		"avatar":   "https://avatar-management.services.atlassian.com/a.png",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(string(body), `https:\/\/gw.example\/b\/acme\/jira-test\/rest\/`) {
		t.Errorf("the escaped link is not rewritten escaped: %s", body)
	}
	for k, v := range map[string]string{
		"Location":         testSiteREST + "api/3/issue/10001",
		"Content-Location": testSiteREST + "api/3/issue/10001",
		"Link":             "<" + testSiteREST + "api/3/project/search?startAt=2>; rel=\"next\"",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	// Jira's Content-Length is replaced by the rewritten body's.
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d on a rewritten body of %d bytes", resp.ContentLength, len(body))
	}
	if n := obs.rewritten(); n != 6 {
		t.Errorf("links counted: got %d, want 6", n)
	}
	if got := up.Last(t).Header.Get(brokerhttp.HeaderPublicBase); got != "" {
		t.Errorf("Jira saw %s %q", brokerhttp.HeaderPublicBase, got)
	}
}

// TestLinksNotRewritten: files, binary bodies, a site with rewrite_links
// off, a call without or with an invalid public base keep Jira's bytes.
func TestLinksNotRewritten(t *testing.T) {
	upstreamLink := func(ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			io.WriteString(w, `{"self":"http://`+r.Host+`/jira/rest/api/3/issue/1"}`)
		}
	}
	off := func(u string) config.Site { s := linkSite(u); s.RewriteLinks = false; return s }
	tests := []struct {
		name   string
		site   func(string) config.Site
		h      http.HandlerFunc
		path   string
		public []string
		warn   bool
	}{
		{"attachment content", linkSite, upstreamLink("text/plain"), "/rest/api/3/attachment/content/10000", []string{testPublic}, false},
		{"binary", linkSite, upstreamLink("application/octet-stream"), "/rest/api/3/issue/ABC-1", []string{testPublic}, false},
		{"content disposition", linkSite, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Disposition", `attachment; filename="x.json"`)
			upstreamLink("application/json")(w, r)
		}, "/rest/api/3/issue/ABC-1", []string{testPublic}, false},
		{"rewrite_links off", off, upstreamLink("application/json"), "/rest/api/3/issue/ABC-1", []string{testPublic}, false},
		{"no public base", linkSite, upstreamLink("application/json"), "/rest/api/3/issue/ABC-1", nil, false},
		{"public base with user info", linkSite, upstreamLink("application/json"), "/rest/api/3/issue/ABC-1", []string{"https://u:p@gw.example"}, true},
		{"public base with a quote", linkSite, upstreamLink("application/json"), "/rest/api/3/issue/ABC-1", []string{`https://gw.example/"x`}, true},
		{"public base twice", linkSite, upstreamLink("application/json"), "/rest/api/3/issue/ABC-1", []string{testPublic, "https://other"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, false, tt.h)
			var logBuf syncBuffer
			f := newFront(t, tt.site(up.URL), Options{Broker: testBroker, Logger: slogTo(&logBuf)})
			var hdr http.Header
			if tt.public != nil {
				hdr = http.Header{brokerhttp.HeaderPublicBase: tt.public}
			}
			_, body := f.do(t, "GET", tt.path, nil, hdr)
			if want := `{"self":"` + up.URL + `/jira/rest/api/3/issue/1"}`; string(body) != want {
				t.Errorf("got %s, want %s", body, want)
			}
			if warned := strings.Contains(logBuf.String(), "invalid "+brokerhttp.HeaderPublicBase); warned != tt.warn {
				t.Errorf("warning about the public base: got %v, want %v\n%s", warned, tt.warn, logBuf.String())
			}
		})
	}
}

// TestGzipAnswerDecodedAndRewritten: the agent asks Jira for identity
// encoding whatever the caller accepts; a gzip answer that comes all the
// same is decoded, rewritten and passed on identity encoded.
func TestGzipAnswerDecodedAndRewritten(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, `{"self":"http://`+r.Host+`/jira/rest/api/3/myself","who":"`+r.Header.Get("Authorization")+`"}`)
		zw.Close()
	})
	f := newFront(t, linkSite(up.URL), Options{Broker: testBroker})
	hdr := http.Header{brokerhttp.HeaderPublicBase: {testPublic}, "Accept-Encoding": {"gzip, br"}}
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, hdr)
	if got := up.Last(t).Header.Get("Accept-Encoding"); got != "identity" {
		t.Errorf("Accept-Encoding at Jira: got %q, want identity", got)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding: got %q, want none", ce)
	}
	want := `{"self":"` + testSiteREST + `api/3/myself","who":"Bearer ` + redacted(len(testToken)) + `"}`
	if string(body) != want {
		t.Errorf("got %s, want %s", body, want)
	}
}

// TestUnreadableEncodingRefused: an answer in an encoding the agent
// cannot decode could hide the credential: it is refused with 502 and
// none of it is passed on.
func TestUnreadableEncodingRefused(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, "\x1b\x03compressed "+r.Header.Get("Authorization"))
	})
	f := newFront(t, testSite(up.URL), Options{})
	resp, body := f.do(t, "GET", "/rest/api/3/myself", nil, nil)
	d := wantBrokerError(t, resp, body, brokerhttp.UpstreamUnreachable)
	if !strings.Contains(d.Message, `Content-Encoding "br"`) {
		t.Errorf("message: %q", d.Message)
	}
}

func TestRedacted(t *testing.T) {
	for _, n := range []int{0, 3, 8, 40} {
		if got := redacted(n); len(got) != n || (n >= 8 && !strings.HasPrefix(got, redactionMark)) {
			t.Errorf("redacted(%d) = %q", n, got)
		}
	}
}

// TestRewrittenBodyLength: a rewritten answer that Jira sent with a
// Content-Length goes on with its new length (read whole, up to
// maxHeldBody); a larger one, or a gzip one that inflates past it, is
// sent chunked and whole. (One that breaks off mid-body:
// TestResponseBrokenMidBody.)
func TestRewrittenBodyLength(t *testing.T) {
	link := func(host string) string { return `{"self":"http://` + host + `/jira/rest/api/3/issue/1","pad":"` }
	tests := []struct {
		name    string
		pad     int
		gzip    bool
		wantLen bool // a Content-Length on the answer
	}{
		{"small", 4 << 10, false, true},
		{"at the limit of held bodies", maxHeldBody - 200, false, true},
		{"larger", maxHeldBody + 1, false, false},
		{"gzip that inflates past the limit", 4 * maxHeldBody, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				body := link(r.Host) + strings.Repeat("x", tt.pad) + `"}`
				w.Header().Set("Content-Type", "application/json")
				if tt.gzip {
					var zb bytes.Buffer
					zw := gzip.NewWriter(&zb)
					io.WriteString(zw, body)
					zw.Close()
					w.Header().Set("Content-Encoding", "gzip")
					body = zb.String()
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				io.WriteString(w, body)
			})
			f := newFront(t, linkSite(up.URL), Options{Broker: testBroker})
			resp, body := f.do(t, "GET", "/rest/api/3/issue/ABC-1", nil, http.Header{brokerhttp.HeaderPublicBase: {testPublic}})
			want := `{"self":"` + testSiteREST + `api/3/issue/1","pad":"` + strings.Repeat("x", tt.pad) + `"}`
			if string(body) != want {
				t.Fatalf("body: got %d bytes, want the %d of the rewritten answer", len(body), len(want))
			}
			if tt.wantLen {
				if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
					t.Errorf("Content-Length %d, Transfer-Encoding %q; want %d and none", resp.ContentLength, resp.TransferEncoding, len(body))
				}
			} else if resp.ContentLength != -1 {
				t.Errorf("Content-Length %d on an answer larger than maxHeldBody, want chunked", resp.ContentLength)
			}
		})
	}
}

// TestReadUpTo: readUpTo stops at its limit whatever its first buffer,
// and keeps what it read before an error.
func TestReadUpTo(t *testing.T) {
	const limit = 100
	for _, size := range []int{0, 1, limit - 1, limit, limit + 1, 3 * limit} {
		for _, hint := range []int{0, 1, size, 2 * limit} {
			got, err := readUpTo(strings.NewReader(strings.Repeat("a", size)), limit, hint)
			if want := min(size, limit); err != nil || len(got) != want {
				t.Errorf("size %d, hint %d: got %d bytes, %v; want %d", size, hint, len(got), err, want)
			}
		}
	}
	broken := io.MultiReader(strings.NewReader("abc"), errReader{io.ErrUnexpectedEOF})
	if got, err := readUpTo(broken, limit, 1); string(got) != "abc" || err != io.ErrUnexpectedEOF {
		t.Errorf("broken: got %q, %v; want abc and the error", got, err)
	}
}
