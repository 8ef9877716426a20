package ttlcache

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// counter is a fetch that counts its calls and answers their number.
type counter struct {
	mu sync.Mutex // guards n
	n  int
	d  time.Duration // how long each answer is good for
}

func (c *counter) fetch(int) (int, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n, c.d, nil
}

func (c *counter) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestGetKeepsForTheTTL: a value is reused for as long as its fetch said,
// and fetched again from then on; keys do not share.
func TestGetKeepsForTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[int](10)
		f := &counter{d: time.Second}
		get := func(key string) int {
			v, err := c.Get(key, f.fetch)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := get("a"); v != 1 {
			t.Fatalf("first get: got %d, want 1", v)
		}
		time.Sleep(time.Second - time.Nanosecond)
		if v := get("a"); v != 1 {
			t.Errorf("just before the TTL: got %d, want 1 (the value kept)", v)
		}
		if v := get("b"); v != 2 {
			t.Errorf("another key: got %d, want 2 (a fetch of its own)", v)
		}
		time.Sleep(time.Nanosecond)
		if v := get("a"); v != 3 {
			t.Errorf("at the TTL: got %d, want 3 (fetched again)", v)
		}
	})
}

// TestGetPassesThePreviousValue: a fetch gets what the key's last fetch
// returned, to fall back on.
func TestGetPassesThePreviousValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[string](10)
		var seen []string
		fetch := func(prev string) (string, time.Duration, error) {
			seen = append(seen, prev)
			return fmt.Sprint("v", len(seen)), time.Minute, nil
		}
		c.Get("k", fetch)
		time.Sleep(time.Minute)
		c.Get("k", fetch)
		if len(seen) != 2 || seen[0] != "" || seen[1] != "v1" {
			t.Errorf("previous values passed to fetch: got %q, want [\"\" v1]", seen)
		}
	})
}

// TestErrorsAreCachedForTheirTTL: an error is an answer too, kept as long
// as the fetch said; a TTL of zero keeps nothing.
func TestErrorsAreCachedForTheirTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[int](10)
		boom := errors.New("registry unreachable")
		calls := 0
		fetch := func(int) (int, time.Duration, error) {
			calls++
			return 0, 250 * time.Millisecond, boom
		}
		for range 3 {
			if _, err := c.Get("k", fetch); !errors.Is(err, boom) {
				t.Fatalf("got %v, want the fetch's error", err)
			}
		}
		if calls != 1 {
			t.Errorf("fetches within the TTL of an error: got %d, want 1", calls)
		}
		time.Sleep(250 * time.Millisecond)
		c.Get("k", fetch)
		if calls != 2 {
			t.Errorf("fetches after the TTL of an error: got %d, want 2", calls)
		}

		f := &counter{}
		c.Get("zero", f.fetch)
		c.Get("zero", f.fetch)
		if n := f.calls(); n != 2 {
			t.Errorf("fetches with a TTL of zero: got %d, want 2", n)
		}
	})
}

// TestConcurrentGetsShareOneFetch: gets of one key at once wait for the
// one fetch in flight instead of each making their own. (No synctest
// bubble: the gets wait on a mutex, which does not let its clock move.)
func TestConcurrentGetsShareOneFetch(t *testing.T) {
	c := New[int](10)
	f := &counter{d: time.Minute}
	started, release := make(chan struct{}), make(chan struct{})
	slow := func(prev int) (int, time.Duration, error) {
		close(started) // a second fetch would panic here
		<-release      // a round trip to Redis
		return f.fetch(prev)
	}
	var wg sync.WaitGroup
	got := make([]int, 20)
	for i := range got {
		wg.Go(func() { got[i], _ = c.Get("k", slow) })
	}
	<-started
	close(release)
	wg.Wait()
	if n := f.calls(); n != 1 {
		t.Errorf("fetches for 20 gets at once: got %d, want 1", n)
	}
	for i, v := range got {
		if v != 1 {
			t.Errorf("get %d: got %d, want 1", i, v)
		}
	}
}

// TestForget: the next Get of a forgotten key fetches, however fresh its
// value was; forgetting a key never seen is harmless.
func TestForget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[int](10)
		f := &counter{d: time.Hour}
		c.Get("k", f.fetch)
		c.Forget("k")
		c.Forget("never seen")
		if v, _ := c.Get("k", f.fetch); v != 2 {
			t.Errorf("after Forget: got %d, want 2 (fetched again)", v)
		}
		if v, _ := c.Get("k", f.fetch); v != 2 {
			t.Errorf("after the fetch that followed Forget: got %d, want 2 (kept)", v)
		}
	})
}

// TestSizeBounded: the cache holds at most its maximum of keys; the key
// over it empties it.
func TestSizeBounded(t *testing.T) {
	c := New[int](3)
	f := &counter{d: time.Hour}
	for i := range 100 {
		c.Get(fmt.Sprint("key-", i), f.fetch)
		if n := c.Len(); n > 3 {
			t.Fatalf("after %d keys: %d held, want at most 3", i+1, n)
		}
	}
	if n := c.Len(); n != 1 {
		t.Errorf("after 100 keys with room for 3: %d held, want 1 (emptied by the 100th)", n)
	}
}
