package brokerhttp

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBodyStall is how long a request body may send nothing, while a
// handler waits to read it, before GuardBodies cuts it.
const DefaultBodyStall = 60 * time.Second

// GuardBodies wraps the handler of an HTTP/1 server that takes request
// bodies (the gateway's connector API and internal listener, the agent's
// tunnel streams) so that the body cannot hold the server's answer, the
// connection or the handler's resources for longer than it says:
//
//   - An answer given before the body was read to its end (a refusal
//     such as 401, 403, 404 or 413, or Jira's own early answer) goes out
//     at once and the connection is then closed. Go's server would first
//     read what is left of the body, before the answer's header (up to
//     256 KiB) and again after the handler (when it closes the body):
//     a client that declares a body and waits for the answer before
//     sending it then gets nothing until it gives up. GuardBodies marks
//     such an answer "Connection: close", which skips the first read, and
//     ends the handler by closing the body while the connection's reads
//     fail at once, which leaves nothing for the second.
//   - A body that sends nothing for stall while the handler waits to read
//     it fails that read with a *StalledError, so that a slow client
//     frees the upstream slot it holds (max_concurrent) within stall of
//     falling silent. A handler that is busy elsewhere (Jira reading
//     slowly) is not timed: only a read that waits is. Zero means
//     DefaultBodyStall.
//
// A body read to its end changes nothing: the connection is kept alive.
func GuardBodies(h http.Handler, stall time.Duration) http.Handler {
	if stall <= 0 {
		stall = DefaultBodyStall
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ProtoMajor != 1 {
			// HTTP/2 frames bodies per stream: an early answer is never
			// held back, and a connection is not ours to close.
			h.ServeHTTP(w, r)
			return
		}
		ctl := http.NewResponseController(w)
		b := &guardedBody{rc: r.Body, stall: stall}
		b.timer = time.AfterFunc(stall, func() {
			b.stalled.Store(true)
			_ = ctl.SetReadDeadline(aLongTimeAgo)
		})
		b.timer.Stop()
		r = r.WithContext(r.Context()) // a copy: the server's request keeps its body
		r.Body = b
		gw := &guardedWriter{ResponseWriter: w, body: b}
		defer func() {
			b.timer.Stop()
			if b.finished.Load() {
				return
			}
			if !gw.answered {
				// The server writes 200 after the handler; it must not
				// wait for the body either.
				w.Header().Set("Connection", "close")
			}
			// Whatever is left of the body is not read: a read still
			// running in another goroutine (a transport copying the body
			// upstream) ends now, and the body is closed while reads
			// fail at once, so that the server's own close of it, after
			// the handler, has nothing left to read (the server clears
			// the deadline before that close). The server then closes
			// the connection.
			_ = ctl.SetReadDeadline(aLongTimeAgo)
			_ = b.rc.Close()
		}()
		h.ServeHTTP(gw, r)
	})
}

// aLongTimeAgo is a deadline in the past: reads fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// StalledError is the read error of a request body that sent nothing for
// longer than the server allows (GuardBodies).
type StalledError struct{ After time.Duration }

func (e *StalledError) Error() string {
	return fmt.Sprintf("no byte of the request body arrived for %s", e.After)
}

// guardedBody times each read of a request body, and knows whether it
// was read to its end.
type guardedBody struct {
	rc    io.ReadCloser
	stall time.Duration
	// timer cuts the connection's reads when a read waits longer than
	// stall; it runs only while a read waits.
	timer    *time.Timer
	stalled  atomic.Bool // set by timer
	finished atomic.Bool // read to io.EOF
}

func (b *guardedBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.stall)
	n, err := b.rc.Read(p)
	if !b.timer.Stop() && b.stalled.Load() {
		// The timer fired: whatever this read returned, the connection
		// cannot read any more.
		return n, &StalledError{After: b.stall}
	}
	if err == io.EOF {
		b.finished.Store(true)
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.rc.Close() }

// guardedWriter marks an answer given before the body's end
// "Connection: close".
type guardedWriter struct {
	http.ResponseWriter
	body     *guardedBody
	answered bool // a final status was written
}

func (w *guardedWriter) WriteHeader(code int) {
	if code >= 200 && !w.answered {
		w.answered = true
		if !w.body.finished.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	if !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered, for handlers that check for http.Flusher.
func (w *guardedWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the server's writer.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TrackedBody is a request body that counts what was read of it and keeps
// its first read error other than io.EOF, so that whoever maps a failed
// exchange to an error code can tell the caller's broken body (too large,
// stalled, cut, badly chunked: bad_request) from the far side failing.
// A transport reads it in its own goroutine, which can outlive the
// handler; Err and BytesRead may be called meanwhile.
type TrackedBody struct {
	io.ReadCloser
	n   atomic.Int64
	mu  sync.Mutex // guards err
	err error
}

func (b *TrackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// Err returns the body's first read error other than io.EOF, or nil; nil
// for a nil b, a request without a body.
func (b *TrackedBody) Err() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// BytesRead returns how many bytes were read of the body so far.
func (b *TrackedBody) BytesRead() int64 { return b.n.Load() }
