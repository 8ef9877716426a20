// Package testwait is the one way tests wait for something to happen:
// they poll a condition with a deadline (tailscale's tstest.WaitFor),
// never sleep a guessed time. A test that must show that something did
// not happen waits for a later event that proves it, or runs in a
// testing/synctest bubble.
package testwait

import (
	"testing"
	"time"
)

// For polls cond until it holds; when timeout passes first, it fails t
// with what it waited for. Call it from the test's goroutine.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if took, ok := Until(timeout, cond); !ok {
		t.Fatalf("waited %s for %s: it did not happen", took.Round(time.Millisecond), what)
	}
}

// Recv waits for a value from ch (or its close) and returns it; when
// timeout passes first, it fails t with what it waited for. Call it from
// the test's goroutine.
func Recv[T any](t testing.TB, timeout time.Duration, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("waited %s for %s: it did not happen", timeout, what)
		var zero T
		return zero
	}
}

// Until polls cond until it holds or timeout passes, and returns how long
// it waited and whether cond held: for callers that measure the wait or
// say more than For does when it fails. cond is called at once, then
// after 5 ms, 10 ms, 20 ms... at most 100 ms apart, and once more at the
// deadline.
func Until(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(timeout)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		if cond() {
			return time.Since(start), true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return time.Since(start), false
		}
		time.Sleep(min(pause, left))
	}
}
