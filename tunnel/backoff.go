package tunnel

import (
	"math/rand/v2"
	"time"
)

// The reconnect backoff of spec.md ("Reconnects"): exponential with full
// jitter from BackoffBase to BackoffMax, started again from its base once
// a session has stayed up StableAfter. The agent and the benchmark's
// simulated agents (bench/agentsim) both redial by it.
const (
	BackoffBase = 500 * time.Millisecond
	BackoffMax  = 30 * time.Second
	StableAfter = 30 * time.Second
)

// Backoff is exponential backoff with full jitter: the n-th delay is
// uniform in [0, min(Max, Base·2ⁿ)]. Full jitter spreads a thousand agents
// that lost the same gateway over the whole window instead of a thundering
// herd at each step. Its zero attempt count is the start; copy a Backoff
// to start another from the same point.
type Backoff struct {
	Base, Max time.Duration
	attempt   int
	// exhausted makes every delay fall in [Max/2, Max] until Reset: after
	// the gateway refused the agent's credentials, retrying soon cannot
	// help, and full jitter would sometimes retry within a second.
	exhausted bool
}

// NewBackoff is the reconnect backoff of spec.md.
func NewBackoff() Backoff { return Backoff{Base: BackoffBase, Max: BackoffMax} }

// Next returns the next delay and counts the attempt.
func (b *Backoff) Next() time.Duration {
	if b.exhausted {
		return b.Max/2 + rand.N(b.Max/2+1)
	}
	ceil := b.Max
	if b.attempt < 30 && b.Base <= b.Max>>b.attempt { // no overflow of Base<<attempt
		ceil = b.Base << b.attempt
	}
	b.attempt++
	return rand.N(ceil + 1)
}

// Exhaust moves the backoff to its cap, e.g. after the gateway refused
// the agent's credentials (a reject unauthorized).
func (b *Backoff) Exhaust() { b.exhausted = true }

// Reset starts the backoff again from its base.
func (b *Backoff) Reset() { b.attempt, b.exhausted = 0, false }

// Attempt is the number of delays handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }
