package tunnel

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
	}{
		{"protocol values", BackoffBase, BackoffMax},
		{"small", time.Millisecond, 50 * time.Millisecond},
		{"base above max", time.Second, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Backoff{Base: tt.base, Max: tt.max}
			for n := range 40 {
				ceil := tt.max
				if n < 30 {
					ceil = min(tt.max, tt.base<<n)
				}
				for range 50 {
					bb := b // the same attempt, many draws
					d := bb.Next()
					if d < 0 || d > ceil {
						t.Fatalf("attempt %d: got %s, want within [0, %s]", n, d, ceil)
					}
					if d > tt.max {
						t.Fatalf("attempt %d: got %s, above the cap %s", n, d, tt.max)
					}
				}
				b.Next()
			}
		})
	}
}

// TestBackoffGrows checks the window doubles: the largest of many draws
// at attempt n comes close to min(max, base·2ⁿ).
func TestBackoffGrows(t *testing.T) {
	b := Backoff{Base: BackoffBase, Max: BackoffMax}
	for n := range 10 {
		ceil := min(BackoffMax, BackoffBase<<n)
		var largest time.Duration
		for range 200 {
			bb := b
			largest = max(largest, bb.Next())
		}
		// Each draw is below 0.9·ceil with probability 0.9; all 200 with 0.9²⁰⁰ ≈ 7e-10.
		if largest < ceil*9/10 {
			t.Errorf("attempt %d: largest of 200 delays %s, want close to %s", n, largest, ceil)
		}
		b.Next()
	}
}

func TestBackoffExhaust(t *testing.T) {
	b := Backoff{Base: BackoffBase, Max: BackoffMax}
	b.Exhaust()
	const draws = 1000
	large := 0
	for range draws {
		d := b.Next()
		if d < 0 || d > BackoffMax {
			t.Fatalf("after exhaust: got %s, want within [0, %s]", d, BackoffMax)
		}
		if d > BackoffMax/4 {
			large++
		}
	}
	// Uniform in [0, 30 s]: three quarters are above 7.5 s. Far fewer would
	// mean the window did not jump to the cap.
	if large < draws/2 {
		t.Errorf("after exhaust: %d of %d delays above %s, want about three quarters", large, draws, BackoffMax/4)
	}
}

func TestBackoffReset(t *testing.T) {
	b := Backoff{Base: BackoffBase, Max: BackoffMax}
	for range 20 {
		b.Next()
	}
	b.Reset()
	for range 100 {
		bb := b
		if d := bb.Next(); d > BackoffBase {
			t.Fatalf("first delay after reset: got %s, want at most %s", d, BackoffBase)
		}
	}
	b.Exhaust()
	b.Reset()
	if d := b.Next(); d > BackoffBase {
		t.Fatalf("first delay after exhaust and reset: got %s, want at most %s", d, BackoffBase)
	}
	if d := b.Next(); d > 2*BackoffBase {
		t.Fatalf("second delay after reset: got %s, want at most %s", d, 2*BackoffBase)
	}
}

// TestBackoffLargeBase: base·2ⁿ must not overflow into a negative window
// for bases larger than the protocol's 500 ms.
func TestBackoffLargeBase(t *testing.T) {
	b := Backoff{Base: time.Minute, Max: time.Hour}
	for n := range 40 {
		if d := b.Next(); d < 0 || d > time.Hour {
			t.Fatalf("attempt %d: got %s, want within [0, 1h]", n, d)
		}
	}
}
