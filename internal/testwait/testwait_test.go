package testwait

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestUntil: the condition is polled until it holds, and not past the
// deadline; the wait is told.
func TestUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		took, ok := Until(time.Second, func() bool { return time.Since(start) >= 300*time.Millisecond })
		if !ok || took < 300*time.Millisecond || took > 400*time.Millisecond {
			t.Errorf("a condition true after 300 ms: got %s, %v; want 300-400 ms, true", took, ok)
		}
		calls := 0
		took, ok = Until(time.Second, func() bool { calls++; return false })
		if ok || took != time.Second {
			t.Errorf("a condition never true: got %s, %v; want 1s, false", took, ok)
		}
		// 0, 5, 15, 35, 75, 155 ms, then every 100 ms to 955, then at 1 s.
		if calls != 15 {
			t.Errorf("polls in 1 s: got %d, want 15", calls)
		}
	})
}

// fatalT records a failure instead of ending the test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}
func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestForSaysWhat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fatalT{TB: t}
		For(f, 50*time.Millisecond, "the moon", func() bool { return false })
		if !strings.Contains(f.msg, "the moon") {
			t.Fatalf("For on a condition that never held: got failure %q, want one that names what it waited for", f.msg)
		}
	})
}

func TestRecv(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		go func() { time.Sleep(time.Second); ch <- 7 }()
		if v := Recv(t, 2*time.Second, "a value", ch); v != 7 {
			t.Errorf("got %d, want 7", v)
		}
		f := &fatalT{TB: t}
		Recv(f, time.Second, "the sun", make(chan struct{}))
		if !strings.Contains(f.msg, "the sun") {
			t.Errorf("Recv on a channel that stays empty: got failure %q, want one that names what it waited for", f.msg)
		}
	})
}
