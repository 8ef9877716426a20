// Package lograte bounds the log lines that a peer can drive: per key (a
// broker, a limit), a burst of lines, then one line per interval, which
// says how many it held back. A flood of events becomes a few lines with
// counts instead of one line per event.
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
	now     func() time.Time

	mu       sync.Mutex // guards keys and overflow
	keys     map[string]*bucket
	overflow *bucket // shared by the keys over maxKeys
}

type bucket struct {
	tokens float64
	last   time.Time
	held   int // lines held back since the last one logged
}

// New returns a Limiter; burst and maxKeys are at least 1.
func New(burst int, every time.Duration, maxKeys int) *Limiter {
	l := &Limiter{burst: float64(max(burst, 1)), every: every, maxKeys: max(maxKeys, 1),
		now: time.Now, keys: make(map[string]*bucket)}
	l.overflow = &bucket{tokens: l.burst}
	return l
}

// Allow takes a line from key's bucket. It reports whether the line may
// be logged and, when it may, how many lines of the key were held back
// before it.
func (l *Limiter) Allow(key string) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.keys[key]
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
		return false, 0
	}
	b.tokens--
	held, b.held = b.held, 0
	return true, held
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
	ok, held := l.Allow(key)
	if !ok {
		return false
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Log(context.Background(), level, msg, args...)
	return true
}
