package gateway

import (
	"container/heap"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// NewToken returns a new random token with 256 bits of entropy.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "oxb_" + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the form in which the gateway stores a token:
// "sha256:" and the hex SHA-256 of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tokenHash is a decoded "sha256:<hex>" value.
type tokenHash [sha256.Size]byte

func parseTokenHash(s string) (tokenHash, bool) {
	var h tokenHash
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return h, false
	}
	return h, true
}

// matches reports whether token hashes to h, in time independent of where
// the two differ.
func (h tokenHash) matches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], sum[:]) == 1
}

// bearerToken returns the token of an Authorization header value of the
// Bearer scheme: the scheme in any case (RFC 9110 §11.1), then one or
// more spaces (§11.4), then the token, which holds no space.
func bearerToken(h string) (string, bool) {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token := strings.TrimLeft(rest, " ")
	if token == "" || strings.Contains(token, " ") {
		return "", false
	}
	return token, true
}

// failureLimiter limits failed authentications per source with a token
// bucket that every connection of the source shares: a source may fail
// failureBurst times at once, and once more every failureEvery after that.
// An attempt takes its place in the bucket when it is admitted, before its
// credential is judged, and gives it back if the credential was good: so
// parallel connections cannot judge more credentials than the bucket holds,
// and callers that authenticate are never refused because of their own
// attempts nor delayed. A source over its budget is refused without its
// credential being judged (a good one too: else the refusal would tell a
// guess from a hit).
//
// A source is an IPv4 address or an IPv6 /64 (one host's usual share),
// within a scope: the broker a credential is for when the gateway knows
// it, else "". OX's connector calls for every customer from the same
// addresses, and one customer's stale token must not lock the others out;
// inventing broker ids buys nothing, as unknown brokers share the scope "".
//
// Memory is bounded by a fixed number of buckets. A new source in a full
// table takes the place of the fullest bucket: one that has refilled is no
// different from no bucket at all, and a source in debt is forgotten only
// when every remembered source is, and then the one with least debt.
type failureLimiter struct {
	burst int           // failures a source may make at once
	every time.Duration // one more failure allowed per every
	size  int           // buckets remembered at most

	mu      sync.Mutex // guards buckets and byFull
	buckets map[sourceKey]*bucket
	byFull  bucketHeap // the bucket that is full soonest first
}

const (
	failureBurst   = 10
	failureEvery   = 6 * time.Second
	failureSources = 1 << 14
)

// sourceKey is where an attempt comes from and what it is for.
type sourceKey struct {
	addr  netip.Addr // IPv4 address or the first address of an IPv6 /64
	scope string
}

// bucket is a source's budget in the form of the time at which it is full
// again (the theoretical arrival time of the generic cell rate algorithm):
// each failure moves it failureEvery later, and the source's debt is how
// far it lies ahead of now.
type bucket struct {
	key     sourceKey
	full    time.Time
	pending int // attempts admitted and not yet settled, counted in full
	index   int // in byFull
}

func newFailureLimiter(burst int, every time.Duration, size int) *failureLimiter {
	return &failureLimiter{burst: burst, every: every, size: size, buckets: make(map[sourceKey]*bucket)}
}

// admit takes a place for one attempt from addr (host:port, or a bare
// address) for scope, before its credential is judged; the caller settles
// it. When the source has no place left, admit takes nothing and reports
// how long until it has one.
func (l *failureLimiter) admit(addr, scope string) (retryAfter time.Duration, ok bool) {
	k := sourceKey{sourceOf(addr), scope}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b != nil {
		if wait := l.wait(b, now, 1); wait > 0 {
			return wait, false
		}
	} else {
		b = l.insert(k)
	}
	b.full = later(b.full, now).Add(l.every)
	b.pending++
	heap.Fix(&l.byFull, b.index)
	return 0, true
}

// settle ends an attempt: failed counts it, else its place is given back.
// An attempt that was not admitted (its source had been forgotten
// meanwhile, or the caller does not admit) is counted when it failed. It
// returns how long until the source may try again.
func (l *failureLimiter) settle(addr, scope string, failed bool) time.Duration {
	k := sourceKey{sourceOf(addr), scope}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	switch {
	case b == nil && !failed:
		return 0
	case b == nil:
		b = l.insert(k)
		b.full = now.Add(l.every)
	case b.pending > 0:
		b.pending--
		if !failed {
			b.full = b.full.Add(-l.every)
		}
	case failed:
		b.full = later(b.full, now).Add(l.every)
	}
	if b.pending == 0 && !b.full.After(now) {
		// Full again: no different from no bucket.
		l.remove(b)
		return 0
	}
	heap.Fix(&l.byFull, b.index)
	return l.wait(b, now, 1)
}

// fail records a failed attempt from addr of no known scope and returns
// how long until the source may try again; it settles an attempt that
// admit admitted for the scope "".
func (l *failureLimiter) fail(addr string) time.Duration { return l.settle(addr, "", true) }

// wait is how long until b has room for more attempts besides those it
// holds (0: now); callers hold l.mu.
func (l *failureLimiter) wait(b *bucket, now time.Time, more int) time.Duration {
	debt := b.full.Sub(now)
	room := time.Duration(l.burst-more) * l.every
	return max(debt-room, 0)
}

// insert adds an empty bucket for k, making room first; callers hold l.mu.
func (l *failureLimiter) insert(k sourceKey) *bucket {
	if len(l.buckets) >= l.size {
		l.remove(l.byFull[0])
	}
	b := &bucket{key: k}
	l.buckets[k] = b
	heap.Push(&l.byFull, b)
	return b
}

func (l *failureLimiter) remove(b *bucket) {
	heap.Remove(&l.byFull, b.index)
	delete(l.buckets, b.key)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// bucketHeap orders buckets by when they are full, soonest first.
type bucketHeap []*bucket

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, j int) bool { return h[i].full.Before(h[j].full) }
func (h bucketHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *bucketHeap) Push(x any) {
	b := x.(*bucket)
	b.index = len(*h)
	*h = append(*h, b)
}
func (h *bucketHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// sourceOf is the address failures from addr are counted by: the IP
// address, an IPv4-mapped IPv6 address as IPv4, an IPv6 address as its
// /64. Whatever does not parse counts as one source (the zero Addr).
func sourceOf(addr string) netip.Addr {
	a, err := netip.ParseAddr(hostOf(addr))
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}

// retrySeconds is d as a Retry-After value: whole seconds, rounded up.
func retrySeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
