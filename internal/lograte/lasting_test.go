package lograte

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/internal/syncbuf"
)

// TestLastingFailureOncePerInterval is the agent's use for a failure that
// retrying cannot mend (an unknown CA): one line per key, then one line
// per interval, which counts the attempts in between. With the agent's
// 5 minutes, a failure retried every second for a minute is one line; the
// count follows at the interval, while Run runs.
func TestLastingFailureOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncbuf.Buffer
		log := slog.New(slog.NewTextHandler(&out, nil))
		l := New(1, 5*time.Minute, 64)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Run(ctx)
		}()
		lines := func() []string { return strings.Split(strings.TrimSpace(out.String()), "\n") }

		for range 60 {
			l.Log(log, slog.LevelError, "unknown CA", "tunnel down: cannot reach the gateway", "cause", "unknown authority")
			time.Sleep(time.Second)
		}
		if got := lines(); len(got) != 1 || strings.Contains(got[0], "suppressed") {
			t.Fatalf("in the first minute: got %d lines %q, want one without a count", len(got), got)
		}

		time.Sleep(4 * time.Minute) // the interval ends: Run logs the count
		synctest.Wait()
		got := lines()
		if len(got) != 2 || !strings.Contains(got[1], "suppressed=59") {
			t.Fatalf("after 5 minutes: got %q, want a second line with suppressed=59", got)
		}
		cancel()
		<-done
	})
}
