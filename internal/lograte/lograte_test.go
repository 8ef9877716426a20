package lograte

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/internal/syncbuf"
)

// TestLimiterBurstThenRate: a key logs its burst at once, then one line
// per interval that counts the lines held back; keys do not share.
func TestLimiterBurstThenRate(t *testing.T) {
	synctest.Test(t, testLimiterBurstThenRate)
}

func testLimiterBurstThenRate(t *testing.T) {
	l := New(3, 10*time.Second, 100)
	var got []string
	for i := range 10 {
		if ok, held := l.Allow("acme"); ok {
			got = append(got, fmt.Sprintf("%d/%d", i, held))
		}
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Error("another key was held back by acme's flood")
	}
	time.Sleep(10 * time.Second)
	if ok, held := l.Allow("acme"); ok {
		got = append(got, fmt.Sprintf("later/%d", held))
	}
	want := "0/0 1/0 2/0 later/7"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("lines logged: got %s, want %s", s, want)
	}
}

// TestLimiterKeysBounded: made-up keys beyond maxKeys share one bucket;
// a key whose bucket is full again makes room.
func TestLimiterKeysBounded(t *testing.T) {
	synctest.Test(t, testLimiterKeysBounded)
}

func testLimiterKeysBounded(t *testing.T) {
	l := New(1, time.Minute, 4)
	logged := 0
	for i := range 1000 {
		if ok, _ := l.Allow(fmt.Sprint("key-", i)); ok {
			logged++
		}
	}
	if len(l.keys) > 4 {
		t.Errorf("keys kept: got %d, want at most 4", len(l.keys))
	}
	if logged != 5 { // four keys, then the overflow bucket's one line
		t.Errorf("lines logged: got %d, want 5", logged)
	}
	time.Sleep(time.Hour)
	if ok, held := l.Allow("fresh"); !ok || held != 0 {
		t.Errorf("a new key after the others refilled: got %v, %d held; want logged", ok, held)
	}
}

func TestLimiterLog(t *testing.T) {
	synctest.Test(t, testLimiterLog)
}

func testLimiterLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(1, time.Minute, 10)
	for range 5 {
		l.Log(log, slog.LevelWarn, "acme", "flood", "broker", "acme")
	}
	time.Sleep(time.Minute)
	l.Log(log, slog.LevelWarn, "acme", "flood", "broker", "acme")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=4") {
		t.Errorf("got %q, want two lines, the second with suppressed=4", lines)
	}
	l.Log(log, slog.LevelDebug, "acme", "not enabled")
	if strings.Contains(buf.String(), "not enabled") {
		t.Error("a line below the logger's level was logged")
	}
}

// TestLimiterFlush: the count of lines held back by a flood that stopped
// is logged by Flush, once, with the last line held back.
func TestLimiterFlush(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(2, time.Hour, 10)
	for i := range 100 {
		l.Log(log, slog.LevelWarn, "acme", "flood", "n", i)
	}
	l.Flush()
	l.Flush() // nothing more held back: no line
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "n=99 suppressed=98") {
		t.Errorf("got %q, want 2 lines, then the last held back with suppressed=98", lines)
	}
}

// TestLimiterRunFlushes: Run tells the count of a flood that stopped
// within an interval, without another line to carry it, and once more
// when its context ends; a quiet interval logs nothing.
func TestLimiterRunFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncbuf.Buffer // Run writes from its goroutine
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
		l := New(1, time.Minute, 10)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		for i := range 10 {
			l.Log(log, slog.LevelWarn, "acme", "flood", "n", i)
		}
		lines := func() int { return strings.Count(buf.String(), "\n") }
		synctest.Wait()
		if n := lines(); n != 1 {
			t.Fatalf("before the interval: %d lines, want the first only", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if !strings.Contains(buf.String(), "n=9 suppressed=9") || lines() != 2 {
			t.Fatalf("after an interval: got %q, want the last line held back, with suppressed=9", buf.String())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := lines(); n != 2 {
			t.Fatalf("after a quiet interval: %d lines, want still 2", n)
		}
		l.Log(log, slog.LevelWarn, "acme", "flood", "n", 10)
		l.Log(log, slog.LevelWarn, "acme", "flood", "n", 11)
		cancel()
		<-done
		if !strings.Contains(buf.String(), "n=11 suppressed=1") {
			t.Errorf("at the end of Run: got %q, want the line held back told", buf.String())
		}
	})
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
