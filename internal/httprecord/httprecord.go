// Package httprecord keeps the requests an HTTP server is given, for tests
// that check what reached it: Jira behind the agent's proxy, an agent
// behind the gateway.
package httprecord

import (
	"io"
	"net/http"
	"sync"
	"testing"
)

// Request is what a Recorder kept of one request.
type Request struct {
	Method        string
	RequestURI    string
	Host          string
	Header        http.Header
	Trailer       http.Header
	ContentLength int64 // as the request said it; -1 chunked
	Body          []byte
	BodyErr       error // reading the body
}

// Recorder is a handler that reads each request's body to its end and
// keeps the request, then lets Next answer it (200 and no body when Next
// is nil). Next finds the body read: it is in the record. A request whose
// body breaks is answered 500, as a server that needs the whole body does,
// and Next does not see it. A Recorder must not be copied after first use.
type Recorder struct {
	Next http.Handler

	mu      sync.Mutex // guards started and seen
	started int
	seen    []Request
}

func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.started++
	rec.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.seen = append(rec.seen, Request{
		Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
		Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), ContentLength: r.ContentLength,
		Body: body, BodyErr: err,
	})
	rec.mu.Unlock()
	if err != nil {
		http.Error(w, "broken body", http.StatusInternalServerError)
		return
	}
	if rec.Next != nil {
		r.Body = http.NoBody
		rec.Next.ServeHTTP(w, r)
	}
}

// Begun returns how many requests have come in, the ones whose body is
// still being read included.
func (rec *Recorder) Begun() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.started
}

// Count returns how many requests were kept: read to the end of their body.
func (rec *Recorder) Count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

// All returns the requests kept so far, the oldest first.
func (rec *Recorder) All() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.seen...)
}

// Last returns the request kept last; it fails t when there is none.
func (rec *Recorder) Last(t testing.TB) Request {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("no request was recorded")
	}
	return rec.seen[len(rec.seen)-1]
}
