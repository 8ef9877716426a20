// Package lograte bounds the log lines that a peer can drive: per key (a
// broker, a limit), a burst of lines, then one line per interval, which
// says how many it held back. A flood of events becomes a few lines with
// counts instead of one line per event; Run makes sure that the count of
// a flood that has stopped is told too.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter is a token bucket per key: burst lines at once, then one more
// each every. It keeps at most maxKeys keys; when they are all in use,
// the keys beyond share one more bucket, so that a peer that makes up
// keys cannot grow it.
type Limiter struct {
	burst   float64
	every   time.Duration
	maxKeys int

	mu       sync.Mutex // guards keys and overflow
	keys     map[string]*bucket
	overflow *bucket // shared by the keys over maxKeys
}

type bucket struct {
	tokens float64
	last   time.Time
	held   int   // lines held back since the last one logged
	line   *line // the last line held back, for Flush
}

// line is a log line held back.
type line struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	args  []any
}

// New returns a Limiter; burst and maxKeys are at least 1.
func New(burst int, every time.Duration, maxKeys int) *Limiter {
	l := &Limiter{burst: float64(max(burst, 1)), every: every, maxKeys: max(maxKeys, 1),
		keys: make(map[string]*bucket)}
	l.overflow = &bucket{tokens: l.burst}
	return l
}

// Allow takes a line from key's bucket. It reports whether the line may
// be logged and, when it may, how many lines of the key were held back
// before it.
func (l *Limiter) Allow(key string) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, held, _ = l.allow(key)
	return ok, held
}

// allow is Allow; it also returns the bucket. Callers hold l.mu.
func (l *Limiter) allow(key string) (ok bool, held int, b *bucket) {
	now := time.Now()
	b = l.keys[key]
	if b == nil {
		if len(l.keys) >= l.maxKeys {
			l.evict(now)
		}
		if len(l.keys) < l.maxKeys {
			b = &bucket{tokens: l.burst, last: now}
			l.keys[key] = b
		} else {
			b = l.overflow
		}
	}
	b.refill(now, l)
	if b.tokens < 1 {
		b.held++
		return false, 0, b
	}
	b.tokens--
	held, b.held, b.line = b.held, 0, nil
	return true, held, b
}

func (b *bucket) refill(now time.Time, l *Limiter) {
	if l.every > 0 {
		b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.every))
	}
	b.last = now
}

// evict drops the buckets that are full again and hold nothing back: they
// are as good as new. Callers hold l.mu.
func (l *Limiter) evict(now time.Time) {
	for k, b := range l.keys {
		b.refill(now, l)
		if b.tokens >= l.burst && b.held == 0 {
			delete(l.keys, k)
		}
	}
}

// Log logs msg with args at level on log when key's bucket allows it,
// adding "suppressed" with the number of lines held back when there were
// any. It reports whether it logged.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) bool {
	if !log.Enabled(context.Background(), level) {
		return false
	}
	l.mu.Lock()
	ok, held, b := l.allow(key)
	if !ok {
		b.line = &line{log: log, level: level, msg: msg, args: args}
	}
	l.mu.Unlock()
	if !ok {
		return false
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Log(context.Background(), level, msg, args...)
	return true
}

// Flush logs, for each key that held lines back since its last line, the
// last line it held back with "suppressed" and their number.
func (l *Limiter) Flush() {
	l.mu.Lock()
	var out []line
	var counts []int
	for _, b := range l.buckets() {
		if b.held > 0 && b.line != nil {
			out = append(out, *b.line)
			counts = append(counts, b.held)
		}
		if b.line != nil || b.held > 0 {
			b.held, b.line = 0, nil
		}
	}
	l.mu.Unlock()
	for i, ln := range out {
		ln.log.Log(context.Background(), ln.level, ln.msg, append(ln.args, "suppressed", counts[i])...)
	}
}

// buckets returns every bucket, the overflow one included. Callers hold l.mu.
func (l *Limiter) buckets() []*bucket {
	all := make([]*bucket, 0, len(l.keys)+1)
	for _, b := range l.keys {
		all = append(all, b)
	}
	return append(all, l.overflow)
}

// Run flushes every interval of the limiter until ctx ends, so that the
// count of a flood that stopped is logged within an interval.
func (l *Limiter) Run(ctx context.Context) {
	if l.every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Flush()
			return
		case <-t.C:
			l.Flush()
		}
	}
}
