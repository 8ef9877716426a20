package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
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

// throttle slows repeated authentication failures from one IP address:
// each failure within the window doubles the delay before the next answer
// to that address, from 100 ms up to 5 s. Successful callers are never
// delayed. It bounds its memory by forgetting everything when full.
type throttle struct {
	mu      sync.Mutex // guards entries
	entries map[string]*failures
}

type failures struct {
	count int
	last  time.Time
}

const (
	throttleWindow  = time.Minute
	throttleMax     = 5 * time.Second
	throttleEntries = 10000
)

func newThrottle() *throttle { return &throttle{entries: make(map[string]*failures)} }

// fail records a failure from addr and returns how long to wait before
// answering it.
func (t *throttle) fail(addr string) time.Duration {
	ip := hostOf(addr)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entries[ip]
	if f == nil || now.Sub(f.last) > throttleWindow {
		if len(t.entries) >= throttleEntries {
			clear(t.entries)
		}
		f = &failures{}
		t.entries[ip] = f
	}
	f.count++
	f.last = now
	d := 100 * time.Millisecond << min(f.count-1, 6)
	return min(d, throttleMax)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
