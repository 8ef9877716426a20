package brokerhttp

import (
	"net/http"
	"sync"
	"time"
)

// FlushDelay is how long a response body written through a DelayedFlush
// may wait in the server's buffer after a flush was asked for.
const FlushDelay = 5 * time.Millisecond

// DelayedFlush is a ResponseWriter that turns each Flush into a flush
// within a delay: httputil.ReverseProxy flushes after every write of a
// response of unknown length (Jira sends most of its answers chunked), and
// a flush is a frame on the tunnel, a TLS record and a system call. With
// the delay the body goes out in the fewest writes, while a body that
// trickles still leaves within the delay; the last bytes go when the
// handler returns, as ever. Call Stop before the handler returns: no
// flush happens after it.
//
// Write, WriteHeader and the delayed flush are serialised by a lock.
type DelayedFlush struct {
	http.ResponseWriter
	delay time.Duration

	mu      sync.Mutex // guards the writer and the fields below
	pending bool       // a flush is scheduled
	stopped bool
	timer   *time.Timer
}

// NewDelayedFlush returns w with its flushes delayed by up to delay.
func NewDelayedFlush(w http.ResponseWriter, delay time.Duration) *DelayedFlush {
	return &DelayedFlush{ResponseWriter: w, delay: delay}
}

func (d *DelayedFlush) WriteHeader(code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ResponseWriter.WriteHeader(code)
}

func (d *DelayedFlush) Write(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ResponseWriter.Write(b)
}

// Flush schedules a flush within the delay, unless one is scheduled.
func (d *DelayedFlush) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending || d.stopped {
		return
	}
	d.pending = true
	if d.timer == nil {
		d.timer = time.AfterFunc(d.delay, d.flushNow)
		return
	}
	d.timer.Reset(d.delay)
}

func (d *DelayedFlush) flushNow() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = false
	if !d.stopped {
		_ = http.NewResponseController(d.ResponseWriter).Flush()
	}
}

// Stop ends the delayed flushes: once it returns, the writer is the
// handler's alone again, to return.
func (d *DelayedFlush) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// Unwrap gives http.ResponseController the writer underneath, for what
// DelayedFlush does not do itself.
func (d *DelayedFlush) Unwrap() http.ResponseWriter { return d.ResponseWriter }
