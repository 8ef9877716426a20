package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/oxsecurity/oxbroker/jira"
)

// upstreamRequest is what reached the upstream: exactly what its HTTP
// server read, before any routing.
type upstreamRequest struct {
	Method     string
	RequestURI string // as sent: escaped path and query
	Host       string
	Header     http.Header // every header, as the server read it
	Trailer    http.Header
	BodyLen    int64
}

// recordingUpstream stands in for Jira in the hostile corpus: a real HTTP
// server that records every request that reaches it and answers with the
// jiratest stand-in, or with a handler that a case installs for one path
// (a Jira that reflects the request's credentials, one that answers
// slowly). Tests then assert on exactly what reached Jira, not on what the
// broker says it forwarded.
type recordingUpstream struct {
	url  string
	next http.Handler

	mu     sync.Mutex // guards seen and routes
	seen   []upstreamRequest
	routes map[string]http.Handler // by path without the query
}

// newRecordingUpstream starts a recording upstream in front of next.
func newRecordingUpstream(t *testing.T, next http.Handler) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{next: next, routes: map[string]http.Handler{}}
	srv := httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *recordingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	var n int64
	if r.Body != nil {
		// Read the body to its end before answering, as Jira does, so
		// that its length and the trailers are known.
		n, _ = io.Copy(io.Discard, r.Body)
	}
	u.mu.Lock()
	// The agent's own probes of the site are answered, not recorded: the
	// tests look at what OX's calls brought (as jiratest.Requests does).
	if r.Header.Get("User-Agent") != jira.ProbeUserAgent {
		u.seen = append(u.seen, upstreamRequest{
			Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), BodyLen: n,
		})
	}
	h := u.routes[r.URL.Path]
	u.mu.Unlock()
	if h == nil {
		h = u.next
	}
	r.Body = http.NoBody // read above
	h.ServeHTTP(w, r)
}

// handle makes requests for path (without the query, as Jira sees it:
// with any /ex/jira/{cloudId} prefix) answer with h.
func (u *recordingUpstream) handle(path string, h http.Handler) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.routes[path] = h
}

// requests returns what reached the upstream so far, the oldest first.
func (u *recordingUpstream) requests() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.seen...)
}

// matching returns the requests whose target contains s.
func (u *recordingUpstream) matching(s string) []upstreamRequest {
	var out []upstreamRequest
	for _, r := range u.requests() {
		if strings.Contains(r.RequestURI, s) {
			out = append(out, r)
		}
	}
	return out
}

// reset forgets what reached the upstream so far.
func (u *recordingUpstream) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen = nil
}

// newRecordingEnv is newEnv whose agents talk to a recording upstream in
// front of the env's Jira stand-in. Start the agents after it.
func newRecordingEnv(t *testing.T) (*env, *recordingUpstream) {
	t.Helper()
	e := newEnv(t)
	u := newRecordingUpstream(t, e.Jira)
	e.JiraURL = u.url
	return e, u
}
