package agent

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
	}{
		{"protocol values", backoffBase, backoffMax},
		{"small", time.Millisecond, 50 * time.Millisecond},
		{"base above max", time.Second, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{base: tt.base, max: tt.max}
			for n := range 40 {
				ceil := tt.max
				if n < 30 {
					ceil = min(tt.max, tt.base<<n)
				}
				for range 50 {
					bb := b // the same attempt, many draws
					d := bb.next()
					if d < 0 || d > ceil {
						t.Fatalf("attempt %d: got %s, want within [0, %s]", n, d, ceil)
					}
					if d > tt.max {
						t.Fatalf("attempt %d: got %s, above the cap %s", n, d, tt.max)
					}
				}
				b.next()
			}
		})
	}
}

// TestBackoffGrows checks the window doubles: the largest of many draws
// at attempt n comes close to min(max, base·2ⁿ).
func TestBackoffGrows(t *testing.T) {
	b := backoff{base: backoffBase, max: backoffMax}
	for n := range 10 {
		ceil := min(backoffMax, backoffBase<<n)
		var largest time.Duration
		for range 200 {
			bb := b
			largest = max(largest, bb.next())
		}
		// Each draw is below 0.9·ceil with probability 0.9; all 200 with 0.9²⁰⁰ ≈ 7e-10.
		if largest < ceil*9/10 {
			t.Errorf("attempt %d: largest of 200 delays %s, want close to %s", n, largest, ceil)
		}
		b.next()
	}
}

func TestBackoffExhaust(t *testing.T) {
	b := backoff{base: backoffBase, max: backoffMax}
	b.exhaust()
	const draws = 1000
	large := 0
	for range draws {
		d := b.next()
		if d < 0 || d > backoffMax {
			t.Fatalf("after exhaust: got %s, want within [0, %s]", d, backoffMax)
		}
		if d > backoffMax/4 {
			large++
		}
	}
	// Uniform in [0, 30 s]: three quarters are above 7.5 s. Far fewer would
	// mean the window did not jump to the cap.
	if large < draws/2 {
		t.Errorf("after exhaust: %d of %d delays above %s, want about three quarters", large, draws, backoffMax/4)
	}
}

func TestBackoffReset(t *testing.T) {
	b := backoff{base: backoffBase, max: backoffMax}
	for range 20 {
		b.next()
	}
	b.reset()
	for range 100 {
		bb := b
		if d := bb.next(); d > backoffBase {
			t.Fatalf("first delay after reset: got %s, want at most %s", d, backoffBase)
		}
	}
	b.exhaust()
	b.reset()
	if d := b.next(); d > backoffBase {
		t.Fatalf("first delay after exhaust and reset: got %s, want at most %s", d, backoffBase)
	}
	if d := b.next(); d > 2*backoffBase {
		t.Fatalf("second delay after reset: got %s, want at most %s", d, 2*backoffBase)
	}
}

// TestBackoffLargeBase: base·2ⁿ must not overflow into a negative window
// for bases larger than the protocol's 500 ms.
func TestBackoffLargeBase(t *testing.T) {
	b := backoff{base: time.Minute, max: time.Hour}
	for n := range 40 {
		if d := b.next(); d < 0 || d > time.Hour {
			t.Fatalf("attempt %d: got %s, want within [0, 1h]", n, d)
		}
	}
}

// TestRepeatedGoAwayBacksOff: a gateway that sends goaway right after
// each welcome is dialled ever more rarely, not in a loop: in ten
// minutes (of synctest's clock), a few dozen dials rather than one per
// round trip. A single goaway after a stable session is still followed by
// a dial at once (a restarting gateway), and so is one after the loop
// once a session has stayed up.
func TestRepeatedGoAwayBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRetry()
		const session = 20 * time.Millisecond // welcome, then goaway at once
		start := time.Now()
		dials := 0
		for time.Since(start) < 10*time.Minute && dials < 100_000 {
			dials++
			time.Sleep(session)
			time.Sleep(r.after(true, session, errGoAway))
		}
		t.Logf("dials in 10 minutes of goaway after welcome: %d", dials)
		// 1 at once, 8 quick, then full jitter up to 30 s: about 55 on
		// average; a dial per round trip would be 30,000.
		if dials > 150 {
			t.Errorf("%d dials in 10 minutes, want at most 150 (the backoff reaches 30 s)", dials)
		}
		// A session that stays up ends the episode: the next goaway is a
		// restart again, dialled at once.
		if d := r.after(true, stableAfter+time.Second, errGoAway); d != 0 {
			t.Errorf("a goaway after a stable session: waits %s, want 0", d)
		}
		if d := r.after(true, session, errGoAway); d > quickWait(0) {
			t.Errorf("a second goaway: waits %s, want a quick retry (at most %s)", d, quickWait(0))
		}
		// A session that ends otherwise breaks the row (the fault suite
		// cycles sessions so, alternating goaway and a cut).
		r.after(true, session, errors.New("session closed by the gateway or the network"))
		if d := r.after(true, session, errGoAway); d != 0 {
			t.Errorf("a goaway after a session that ended otherwise: waits %s, want 0", d)
		}
	})
}
