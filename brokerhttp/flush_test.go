package brokerhttp

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// flushCounter is a ResponseWriter that counts the flushes it is asked for.
type flushCounter struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	flushes int
}

func (f *flushCounter) Flush() {
	f.mu.Lock()
	f.flushes++
	f.mu.Unlock()
}

func (f *flushCounter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushes
}

// TestDelayedFlush: flushes asked for within the delay make one flush,
// made within the delay; after Stop there is none.
func TestDelayedFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		under := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
		d := NewDelayedFlush(under, FlushDelay)
		for range 5 {
			d.Write([]byte("part "))
			http.NewResponseController(d).Flush()
		}
		if n := under.count(); n != 0 {
			t.Fatalf("flushed %d times at once, want none before the delay", n)
		}
		time.Sleep(FlushDelay)
		synctest.Wait()
		if n := under.count(); n != 1 {
			t.Fatalf("after the delay: %d flushes, want 1", n)
		}
		d.Write([]byte("more"))
		d.Flush()
		d.Stop()
		time.Sleep(2 * FlushDelay)
		synctest.Wait()
		if n := under.count(); n != 1 {
			t.Errorf("after Stop: %d flushes, want still 1", n)
		}
		if got := under.Body.String(); got != "part part part part part more" {
			t.Errorf("body: got %q", got)
		}
	})
}
