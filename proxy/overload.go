package proxy

import (
	"log/slog"
	"sync"
	"time"
)

// overloadWarnEvery is how often, at most, a site warns that requests are
// refused with overloaded.
const overloadWarnEvery = time.Minute

// overloadLog turns the refusals of a site at max_concurrent into one
// warning per overloadWarnEvery with their count, however many there are:
// a caller that holds every slot (slow requests, slow bodies) must not
// also flood the log. Each refusal keeps its own audit line.
type overloadLog struct {
	mu      sync.Mutex // guards the fields below
	last    time.Time  // when the last warning was written; zero before the first
	refused int        // refusals since then
}

// refuse counts one refusal and warns when the last warning is older than
// overloadWarnEvery.
func (o *overloadLog) refuse(log *slog.Logger, maxConcurrent int, now time.Time) {
	o.mu.Lock()
	o.refused++
	if !o.last.IsZero() && now.Sub(o.last) < overloadWarnEvery {
		o.mu.Unlock()
		return
	}
	n, since := o.refused, o.last
	o.last, o.refused = now, 0
	o.mu.Unlock()
	attrs := []any{"max_concurrent", maxConcurrent, "refused", n}
	if !since.IsZero() {
		attrs = append(attrs, "since", since.Format(time.RFC3339))
	}
	log.Warn("requests to this site are refused with overloaded: every max_concurrent slot is in use "+
		"(by slow Jira answers, or by callers sending their bodies slowly); raise max_concurrent if Jira can take more", attrs...)
}
