package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestNotifyDatagram: the assignments reach the socket systemd names, as
// one datagram, and a status line cannot smuggle in a second assignment.
func TestNotifyDatagram(t *testing.T) {
	if testing.Short() {
		t.Skip("unix socket")
	}
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unixgram sockets here: %v", err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	sent, err := Notify(Ready, Status("2 of 2 tunnels up\nREADY=0  WATCHDOG=trigger"))
	if err != nil || !sent {
		t.Fatalf("Notify: sent %v, err %v", sent, err)
	}
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "READY=1\nSTATUS=2 of 2 tunnels up; READY=0 WATCHDOG=trigger"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("got sent %v, err %v; want nothing sent and no error", sent, err)
	}
	called := false
	Supervise(context.Background(), func() Report { called = true; return Report{} }, Options{})
	if !called {
		t.Error("the probe was not asked for the first status")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "3000000")
	if got := WatchdogInterval(); got != 3*time.Second {
		t.Errorf("got %v, want 3s", got)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if got := WatchdogInterval(); got != 0 {
		t.Errorf("without WATCHDOG_USEC: got %v, want 0", got)
	}
}

// recorder is a Send that keeps each datagram with the (bubble's) time.
type recorder struct {
	mu    sync.Mutex // guards sends
	sends []sent
}

type sent struct {
	at     time.Time
	states []string
}

func (r *recorder) send(states ...string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sends = append(r.sends, sent{time.Now(), states})
	return true, nil
}

// first is the time of the first datagram holding state, and whether one does.
func (r *recorder) first(state string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sends {
		if slices.Contains(s.states, state) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// last is the time of the last datagram holding state.
func (r *recorder) last(state string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var at time.Time
	for _, s := range r.sends {
		if slices.Contains(s.states, state) {
			at = s.at
		}
	}
	return at
}

func (r *recorder) statuses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.sends {
		for _, st := range s.states {
			if strings.HasPrefix(st, "STATUS=") {
				out = append(out, st)
			}
		}
	}
	return out
}

// superviseFor runs Supervise with probe and o (Send: a recorder) for d
// of the synctest bubble's time, then ends it, and returns what it sent.
func superviseFor(d time.Duration, probe func() Report, o Options) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	o.Send = rec.send
	done := make(chan struct{})
	go func() {
		defer close(done)
		Supervise(ctx, probe, o)
	}()
	time.Sleep(d)
	cancel()
	<-done
	return rec
}

// TestSuperviseReadyWhenProbeIs: READY=1 waits for the probe to say so,
// and the status line follows the probe.
func TestSuperviseReadyWhenProbeIs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		probe := func() Report {
			if time.Since(start) < 5*time.Second {
				return Report{Status: "0 of 2 tunnels up"}
			}
			return Report{Ready: true, Status: "2 of 2 tunnels up"}
		}
		rec := superviseFor(10*time.Second, probe, Options{ReadyWait: time.Minute, Watchdog: 4 * time.Second})
		at, ok := rec.first(Ready)
		if !ok || at.Sub(start) < 5*time.Second || at.Sub(start) > 6*time.Second {
			t.Errorf("READY=1 at %v (sent %v), want once the probe is ready, 5 s in", at.Sub(start), ok)
		}
		if got, want := rec.statuses(), []string{"STATUS=0 of 2 tunnels up", "STATUS=2 of 2 tunnels up", "STATUS=stopping: draining requests in flight"}; !slices.Equal(got, want) {
			t.Errorf("status lines: got %q, want %q", got, want)
		}
		if _, ok := rec.first(Stopping); !ok {
			t.Error("no STOPPING=1 when the context ended")
		}
	})
}

// TestSuperviseReadyAfterWait: a service that cannot serve yet (its
// gateway is down) still tells systemd it started, after ReadyWait.
func TestSuperviseReadyAfterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rec := superviseFor(30*time.Second, func() Report { return Report{Status: "no tunnel up"} }, Options{ReadyWait: 20 * time.Second})
		at, ok := rec.first(Ready)
		if !ok || at.Sub(start) < 20*time.Second || at.Sub(start) > 21*time.Second {
			t.Errorf("READY=1 at %v (sent %v), want after the 20 s wait", at.Sub(start), ok)
		}
		if _, ok := rec.first(Watchdog); ok {
			t.Error("WATCHDOG=1 sent although no watchdog is set")
		}
	})
}

// TestSuperviseHungProbeStopsPings is the watchdog's promise: once the
// probe hangs, no ping follows, however long systemd waits.
func TestSuperviseHungProbeStopsPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		var hungAt time.Time
		calls := 0
		probe := func() Report {
			calls++
			if calls == 10 {
				hungAt = time.Now()
				<-release // a deadlock, until the test ends it
			}
			return Report{Ready: true, Status: "up"}
		}
		rec := &recorder{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Supervise(ctx, probe, Options{Watchdog: 2 * time.Second, Send: rec.send})
		}()
		time.Sleep(time.Minute)
		synctest.Wait()
		last := rec.last(Watchdog)
		close(release)
		cancel()
		<-done
		if hungAt.IsZero() {
			t.Fatal("the probe never hung")
		}
		if last.IsZero() || last.After(hungAt) {
			t.Errorf("last ping at %v, probe hung at %v: want pings before the hang and none after", last, hungAt)
		}
		// Before the hang the pings came at least twice per interval.
		var prev time.Time
		rec.mu.Lock()
		for _, s := range rec.sends {
			if slices.Contains(s.states, Watchdog) && !s.at.After(hungAt) {
				if !prev.IsZero() && s.at.Sub(prev) > time.Second {
					t.Errorf("pings %v apart, want at most half of WatchdogSec (1 s)", s.at.Sub(prev))
				}
				prev = s.at
			}
		}
		rec.mu.Unlock()
	})
}
