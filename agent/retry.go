package agent

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// Quick retries (tunnel/spec.md, "Reconnects").
const (
	// quickRetry is the first wait after a goaway or a reject
	// shutting_down has been followed by a failed dial: the gateway is
	// restarting, and the one that replaces it (or another one) is
	// likely up within moments. Each further wait doubles, up to
	// quickRetryMax; each is uniform in [w/2, w], so that agents told at
	// once do not come back at once.
	quickRetry    = 100 * time.Millisecond
	quickRetryMax = time.Second
	// quickRetries is how many quick retries a connection makes after a
	// goaway or shutting_down before its backoff applies again; only a
	// welcome gives it more. A gateway that keeps answering shutting_down
	// (it drains a slow request) is dialled about once a second for a
	// few seconds, not ten times a second, and then ever more rarely.
	quickRetries = 8
)

// retry decides how long a connection waits before its next dial. It is
// owned by the connection's goroutine.
type retry struct {
	bo tunnel.Backoff
	// restarting is set by a goaway or a reject shutting_down and cleared
	// by a welcome: the gateway is restarting rather than failing.
	restarting bool
	// quick counts the quick retries since the last welcome.
	quick int
	// goaways counts the goaways in a row: since a session last stayed
	// up for tunnel.StableAfter or ended some other way. One is a gateway that
	// restarts; more are a gateway that sends the agent away again as
	// soon as it comes (a rolling restart, or a broken or hostile
	// gateway), and back off.
	goaways int
}

func newRetry() retry { return retry{bo: tunnel.NewBackoff()} }

// after returns the wait before the next dial, given how the last attempt
// ended: welcomed says whether the gateway accepted the session, upFor how
// long the attempt lasted, err why it ended.
//
// A goaway (the gateway asked the agent to move) is followed by a dial at
// once. A further goaway in a row (no session in between stayed up for
// tunnel.StableAfter or ended otherwise) waits on the quick schedule
// (quickRetries times), then takes the backoff's steps: a gateway that
// sends goaway right after each welcome is dialled ever more rarely, not
// in a loop. After a goaway or a reject
// shutting_down, until the next welcome, each failed attempt (another
// shutting_down, or a refused dial while the gateway's process restarts)
// is retried on the quick schedule, without growing the backoff,
// quickRetries times at most. Bad credentials wait near the cap;
// everything else takes the next backoff step, which starts again from
// its base once a session has stayed up for tunnel.StableAfter.
func (r *retry) after(welcomed bool, upFor time.Duration, err error) time.Duration {
	if welcomed {
		r.restarting, r.quick = false, 0
		if upFor > tunnel.StableAfter {
			r.bo.Reset()
			r.goaways = 0
		}
		if !errors.Is(err, errGoAway) {
			r.goaways = 0 // the session ended some other way: the row is broken
		}
	}
	var rej *tunnel.RejectError
	switch {
	case errors.Is(err, errGoAway):
		r.restarting = true
		r.goaways++
		if r.goaways == 1 {
			r.bo.Reset()
			return 0
		}
		if k := r.goaways - 2; k < quickRetries {
			return quickDelay(k)
		}
		return r.bo.Next()
	case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectUnauthorized:
		r.restarting = false
		r.bo.Exhaust()
		return r.bo.Next()
	case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectShutdown:
		r.restarting = true
	}
	if r.restarting && r.quick < quickRetries {
		r.quick++
		return quickDelay(r.quick - 1)
	}
	return r.bo.Next()
}

// quickDelay is the wait before quick retry n (from 0): uniform in
// [w/2, w] with w = quickWait(n), so that agents told at once do not come
// back at once.
func quickDelay(n int) time.Duration {
	w := quickWait(n)
	return w/2 + rand.N(w/2+1)
}

// quickWait is the longest wait before quick retry n (from 0).
func quickWait(n int) time.Duration {
	if n >= 10 { // quickRetry<<10 is far above quickRetryMax
		return quickRetryMax
	}
	return min(quickRetry<<n, quickRetryMax)
}
