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
	// exhausted makes every delay fall in [max/2, max] until reset: after
	// the gateway refused our credentials, retrying soon cannot help, and
	// full jitter would sometimes retry within a second.
	exhausted bool
}

func (b *backoff) next() time.Duration {
	if b.exhausted {
		return b.max/2 + rand.N(b.max/2+1)
	}
	ceil := b.max
	if b.attempt < 30 && b.base <= b.max>>b.attempt { // no overflow of base<<attempt
		ceil = b.base << b.attempt
	}
	b.attempt++
	return rand.N(ceil + 1)
}

// exhaust moves the backoff to its cap, e.g. after the gateway refused our
// credentials.
func (b *backoff) exhaust() { b.exhausted = true }

func (b *backoff) reset() { b.attempt, b.exhausted = 0, false }
