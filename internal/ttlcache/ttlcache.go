// Package ttlcache remembers one value per key for as long as the fetch
// that made it says, and lets concurrent gets of one key share one fetch.
// It bounds its size by emptying itself when full: keep it for keys that
// callers cannot make up (the gateway keys it by authenticated brokers).
package ttlcache

import (
	"sync"
	"time"
)

// Cache is safe for concurrent use.
type Cache[V any] struct {
	max     int
	mu      sync.Mutex // guards entries
	entries map[string]*entry[V]
}

type entry[V any] struct {
	mu   sync.Mutex // guards the rest; held during a fetch
	next time.Time  // fetch again from then on
	val  V
	err  error
}

// New returns a cache of at most max keys.
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, entries: make(map[string]*entry[V])}
}

// Get returns the value of key. fetch gets the value it returned last
// time, and says how long its answer (an error too) is good for.
func (c *Cache[V]) Get(key string, fetch func(prev V) (V, time.Duration, error)) (V, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
		e = &entry[V]{}
		c.entries[key] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Now().Before(e.next) {
		return e.val, e.err
	}
	var d time.Duration
	e.val, d, e.err = fetch(e.val)
	e.next = time.Now().Add(d)
	return e.val, e.err
}

// Forget makes the next Get of key fetch.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.next = time.Time{}
		e.mu.Unlock()
	}
}

// Len returns the number of keys the cache holds.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
