package agent

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: the n-th delay is
// uniform in [0, min(max, base·2ⁿ)]. Full jitter spreads a thousand agents
// that lost the same gateway over the whole window instead of a thundering
// herd at each step.
type backoff struct {
	base, max time.Duration
	attempt   int
}

func (b *backoff) next() time.Duration {
	ceil := b.max
	if b.attempt < 30 {
		ceil = min(b.max, b.base<<b.attempt)
	}
	b.attempt++
	return rand.N(ceil + 1)
}

// exhaust makes the next delays use the cap, e.g. after the gateway
// refused our credentials: retrying fast will not fix them.
func (b *backoff) exhaust() { b.attempt = 30 }

func (b *backoff) reset() { b.attempt = 0 }
