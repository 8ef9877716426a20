package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
)

func TestHashToken(t *testing.T) {
	tests := []struct {
		token string
		want  string
	}{
		// SHA-256 test vectors (FIPS 180-2).
		{"", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		if got := HashToken(tt.token); got != tt.want {
			t.Errorf("HashToken(%q): got %s, want %s", tt.token, got, tt.want)
		}
	}
	// The form the config accepts (config/validate.go, hashRE).
	form := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	for range 100 {
		if h := HashToken(NewToken()); !form.MatchString(h) {
			t.Fatalf("HashToken: got %q, want sha256:<64 lowercase hex>", h)
		}
	}
}

func TestParseTokenHash(t *testing.T) {
	valid := HashToken("oxb_secret")
	hexPart := strings.TrimPrefix(valid, "sha256:")
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", valid, true},
		{"upper-case hex", "sha256:" + strings.ToUpper(hexPart), true}, // hex.Decode takes both cases; config.Validate refuses it first
		{"empty", "", false},
		{"no prefix", hexPart, false},
		{"prefix only", "sha256:", false},
		{"wrong algorithm", "sha512:" + hexPart, false},
		{"upper-case prefix", "SHA256:" + hexPart, false},
		{"no colon", "sha256" + hexPart, false},
		{"space after colon", "sha256: " + hexPart[1:], false},
		{"63 hex digits", valid[:len(valid)-1], false},
		{"65 hex digits", valid + "0", false},
		{"128 hex digits", valid + hexPart, false},
		{"non-hex digit", "sha256:" + "g" + hexPart[1:], false},
		{"trailing newline", valid[:len(valid)-1] + "\n", false},
		{"token instead of hash", "oxb_" + strings.Repeat("A", 60), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := parseTokenHash(tt.in)
			if ok != tt.ok {
				t.Fatalf("parseTokenHash(%q): got ok %v, want %v", tt.in, ok, tt.ok)
			}
			if ok && !h.matches("oxb_secret") {
				t.Errorf("parseTokenHash(%q): the hash does not match the token it was made from", tt.in)
			}
		})
	}
}

func TestTokenHashMatches(t *testing.T) {
	token := NewToken()
	h, ok := parseTokenHash(HashToken(token))
	if !ok {
		t.Fatal("parseTokenHash refused the output of HashToken")
	}
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"same token", token, true},
		{"empty", "", false},
		{"other token", NewToken(), false},
		{"trailing newline", token + "\n", false},
		{"one character short", token[:len(token)-1], false},
		{"one character more", token + "x", false},
		{"different case", strings.ToUpper(token), strings.ToUpper(token) == token},
		{"the hash itself", HashToken(token), false},
	}
	for _, tt := range tests {
		if got := h.matches(tt.token); got != tt.want {
			t.Errorf("%s: matches: got %v, want %v", tt.name, got, tt.want)
		}
	}
	var zero tokenHash
	if zero.matches("") {
		t.Error("the zero hash matches the empty token; want no match (sha256 of \"\" is not zero)")
	}
}

func TestNewToken(t *testing.T) {
	form := regexp.MustCompile(`^oxb_[A-Za-z0-9_-]{43}$`) // 32 bytes, base64url without padding
	seen := make(map[string]bool)
	for range 1000 {
		tok := NewToken()
		if !form.MatchString(tok) {
			t.Fatalf("NewToken: got %q, want oxb_ and 43 base64url characters", tok)
		}
		if len(tok) != 47 {
			t.Fatalf("NewToken: got length %d, want 47", len(tok))
		}
		if seen[tok] {
			t.Fatalf("NewToken returned %q twice", tok)
		}
		seen[tok] = true
	}
}

// TestFailureLimiterBudget: a source may fail failureBurst times at once,
// then once more every failureEvery; a refused attempt says when to come
// back and costs nothing. The fake clock of synctest lets time pass.
func TestFailureLimiterBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(failureBurst, failureEvery, failureSources)
		const src = "192.0.2.1:40000"
		for i := range failureBurst {
			if wait, ok := l.admit(src, ""); !ok {
				t.Fatalf("attempt %d of a fresh source: refused (retry after %s), want admitted", i+1, wait)
			}
			l.settle(src, "", true)
		}
		for i := range 3 {
			wait, ok := l.admit(src, "")
			if ok || wait != failureEvery {
				t.Fatalf("attempt %d past the burst: got %s, %v; want refused, retry after %s", i+1, wait, ok, failureEvery)
			}
		}
		// The refusals cost nothing: one interval later there is room
		// for exactly one more.
		time.Sleep(failureEvery - time.Second)
		if wait, ok := l.admit(src, ""); ok || wait != time.Second {
			t.Fatalf("1 s before the refill: got %s, %v; want refused, retry after 1s", wait, ok)
		}
		time.Sleep(time.Second)
		if _, ok := l.admit(src, ""); !ok {
			t.Fatal("after one interval: refused, want one attempt admitted")
		}
		if wait := l.settle(src, "", true); wait != failureEvery {
			t.Errorf("settling that failure: got retry after %s, want %s", wait, failureEvery)
		}
		if _, ok := l.admit(src, ""); ok {
			t.Fatal("a second attempt in the same interval: admitted, want refused")
		}
		// A quiet source gets its whole burst back, and is forgotten.
		time.Sleep(failureBurst * failureEvery)
		if len(l.buckets) != 1 {
			t.Fatalf("buckets: got %d, want 1", len(l.buckets))
		}
		for i := range failureBurst {
			if _, ok := l.admit(src, ""); !ok {
				t.Fatalf("attempt %d after a quiet spell: refused, want the whole burst", i+1)
			}
			l.settle(src, "", false)
		}
		if len(l.buckets) != 0 {
			t.Errorf("buckets after successes only: got %d, want 0 (a full bucket is no bucket)", len(l.buckets))
		}
	})
}

// TestFailureLimiterSuccessesCostNothing: a source that authenticates is
// never refused, however often, and its good attempts leave the budget of
// its failures as it was.
func TestFailureLimiterSuccessesCostNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(failureBurst, failureEvery, failureSources)
		const src = "192.0.2.1:1"
		for range failureBurst - 1 {
			l.admit(src, "acme")
			l.settle(src, "acme", true)
		}
		for i := range 10000 {
			if wait, ok := l.admit(src, "acme"); !ok {
				t.Fatalf("good attempt %d: refused (retry after %s)", i+1, wait)
			}
			if wait := l.settle(src, "acme", false); wait != 0 {
				t.Fatalf("good attempt %d: settled with retry after %s, want 0", i+1, wait)
			}
		}
		// One failure is still left, and no more.
		if _, ok := l.admit(src, "acme"); !ok {
			t.Fatal("the last failure of the burst: refused")
		}
		l.settle(src, "acme", true)
		if _, ok := l.admit(src, "acme"); ok {
			t.Fatal("past the burst: admitted")
		}
	})
}

// TestFailureLimiterSharedByParallelAttempts: attempts in flight at once
// hold their places, so that no more credentials are judged in parallel
// than the budget allows, whatever the number of connections.
func TestFailureLimiterSharedByParallelAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(failureBurst, failureEvery, failureSources)
		const n = 200
		var admitted atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				src := fmt.Sprintf("198.51.100.7:%d", 1024+i) // one address, many connections
				if _, ok := l.admit(src, ""); !ok {
					return
				}
				admitted.Add(1)
				time.Sleep(time.Second) // judging takes a while
				l.settle(src, "", true)
			})
		}
		close(start)
		wg.Wait()
		if got := admitted.Load(); got != failureBurst {
			t.Errorf("attempts admitted from one address over %d parallel connections: got %d, want %d", n, got, failureBurst)
		}
	})
}

func TestFailureLimiterSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(1, time.Minute, failureSources)
		spend := func(addr, scope string) {
			t.Helper()
			if _, ok := l.admit(addr, scope); !ok {
				t.Fatalf("%s (scope %q): refused before its first failure", addr, scope)
			}
			l.settle(addr, scope, true)
		}
		refused := func(addr, scope string) bool {
			_, ok := l.admit(addr, scope)
			if ok {
				l.settle(addr, scope, false)
			}
			return !ok
		}
		spend("192.0.2.1:1000", "")
		spend("[2001:db8:1:2:aaaa::1]:443", "")
		spend("no-port", "")
		spend("192.0.2.9:1", "acme")
		tests := []struct {
			addr, scope string
			same        bool
		}{
			{"192.0.2.1:1001", "", true},                       // another port, same address
			{"192.0.2.1", "", true},                            // a bare address
			{"[::ffff:192.0.2.1]:80", "", true},                // IPv4-mapped IPv6
			{"192.0.2.2:1000", "", false},                      // the next IPv4 address
			{"192.0.2.1:1000", "acme", false},                  // same address, another broker
			{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "", true}, // same /64
			{"[2001:db8:1:2::%eth0]:1", "", true},              // with a zone
			{"[2001:db8:1:3::1]:443", "", false},               // the next /64
			{"no-port", "", true},                              // unparsable: one shared source
			{"other-unparsable", "", true},
			{"192.0.2.9:2", "acme", true},
			{"192.0.2.9:2", "", false},
		}
		for _, tt := range tests {
			if got := refused(tt.addr, tt.scope); got != tt.same {
				t.Errorf("%s (scope %q): refused %v, want %v", tt.addr, tt.scope, got, tt.same)
			}
		}
	})
}

// TestFailureLimiterFailCompat: fail, as serveSession calls it, counts a
// failure that was not admitted, and settles one that was (once).
func TestFailureLimiterFailCompat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(3, time.Minute, failureSources)
		const src = "192.0.2.1:1"
		if wait := l.fail(src); wait != 0 {
			t.Errorf("first failure: retry after %s, want 0", wait)
		}
		l.admit(src, "")
		if wait := l.fail(src); wait != 0 {
			t.Errorf("second failure, admitted: retry after %s, want 0 (counted once)", wait)
		}
		l.admit(src, "")
		if wait := l.fail(src); wait != time.Minute {
			t.Errorf("third failure: retry after %s, want 1m", wait)
		}
		if _, ok := l.admit(src, ""); ok {
			t.Error("after three failures with a burst of three: admitted")
		}
	})
}

// TestFailureLimiterMemoryBound: the table never holds more buckets than
// its size, and making room never frees a source in debt while a fuller
// bucket can go; there is no wholesale reset.
func TestFailureLimiterMemoryBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const size = 64
		l := newFailureLimiter(failureBurst, failureEvery, size)
		const guesser = "203.0.113.66:1"
		for range failureBurst {
			l.admit(guesser, "")
			l.settle(guesser, "", true)
		}
		addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:443", i>>16&0xff, i>>8&0xff, i&0xff) }
		for i := range 100 * size {
			if _, ok := l.admit(addr(i), ""); !ok {
				t.Fatalf("source %d: refused before any failure", i)
			}
			l.settle(addr(i), "", true)
			if len(l.buckets) > size || len(l.byFull) != len(l.buckets) {
				t.Fatalf("after %d sources: %d buckets, %d in the heap; want at most %d, the same", i+1, len(l.buckets), len(l.byFull), size)
			}
		}
		if wait, ok := l.admit(guesser, ""); ok {
			t.Fatal("the guesser was forgotten by a flood of other sources, each with less debt")
		} else {
			t.Logf("after %d other sources, the guesser still waits %s", 100*size, wait)
		}
		// Once the others have refilled, they go first, even though the
		// guesser failed before them.
		time.Sleep(2 * failureEvery)
		for range failureBurst - 1 {
			l.admit(guesser, "")
			l.settle(guesser, "", true)
		}
		for i := range 2 * size {
			l.admit(addr(1000000+i), "")
			l.settle(addr(1000000+i), "", true)
		}
		if _, ok := l.admit(guesser, ""); ok {
			t.Error("the guesser in debt was evicted while refilled buckets were left")
		}
	})
}

// BenchmarkFailureLimiterGood is what the limiter costs a caller that
// authenticates: one admit and one settle, from many sources in parallel.
func BenchmarkFailureLimiterGood(b *testing.B) {
	l := newFailureLimiter(failureBurst, failureEvery, failureSources)
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		src := fmt.Sprintf("10.0.%d.1:443", next.Add(1))
		for pb.Next() {
			l.admit(src, "acme")
			l.settle(src, "acme", false)
		}
	})
}

// TestConnectorFailuresLimitedAcrossConnections: wrong tokens sent over
// many connections at once from one address: the first failureBurst are
// judged (401), the rest get 429 with Retry-After at once, a good token
// too; calls for a known broker have a budget of their own.
func TestConnectorFailuresLimitedAcrossConnections(t *testing.T) {
	tg, _ := startWithAgent(t, tunnel.TransportTCP)
	const n = 3 * 10 // three times the burst
	type result struct {
		status     int
		code       string
		retryAfter string
		err        error
	}
	parallel := func(path, token string) map[int]int {
		results := make(chan result, n)
		for range n {
			go func() {
				// A new connection per call.
				req, _ := http.NewRequest("GET", "http://"+tg.api+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Close = true
				resp, err := tg.client.Do(req)
				if err != nil {
					results <- result{err: err}
					return
				}
				resp.Body.Close()
				results <- result{resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError), resp.Header.Get("Retry-After"), nil}
			}()
		}
		counts := map[int]int{}
		for range n {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			counts[r.status]++
			if r.status == http.StatusTooManyRequests {
				if secs, err := strconv.Atoi(r.retryAfter); r.code != "too_many_failures" || err != nil || secs < 1 {
					t.Errorf("429: Ox-Broker-Error %q, Retry-After %q; want too_many_failures and whole seconds", r.code, r.retryAfter)
				}
			}
		}
		return counts
	}
	start := time.Now()
	if got := parallel("/b/nosuch/jira/x", "oxb_guess"); got[401] != 10 || got[429] != n-10 {
		t.Errorf("%d wrong tokens at once for an unknown broker: got %v, want 10 401 and %d 429", n, got, n-10)
	}
	t.Logf("%d parallel wrong tokens answered in %s", n, time.Since(start).Round(time.Millisecond))
	// A good token for an unknown broker is not judged either: judging it
	// would tell a hit from a miss.
	resp, body := tg.call(t, "GET", "/b/nosuch/jira/x", tg.acmeConnector, nil, "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("good token, unknown broker, address over its budget: got %d %s, want 429", resp.StatusCode, body)
	}
	// A known broker has its own budget: acme's connector still gets in.
	resp, body = tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
	decodeEcho(t, resp, body)
	if got := parallel("/b/acme/jira/x", "oxb_guess"); got[401] != 10 || got[429] != n-10 {
		t.Errorf("%d wrong tokens at once for acme: got %v, want 10 401 and %d 429", n, got, n-10)
	}
	resp, body = tg.call(t, "GET", "/b/acme/jira/x", tg.acmeConnector, nil, "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("acme's good token after acme's budget is spent: got %d %s, want 429", resp.StatusCode, body)
	}
	resp, body = tg.call(t, "GET", "/v1/brokers/other", tg.otherConnector, nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("other's good token after acme's budget is spent: got %d %s, want 200", resp.StatusCode, body)
	}
	if got := counterValue(tg.gw.metrics.authLimited.WithLabelValues("api")); got != 2*(n-10)+2 {
		t.Errorf("auth_rate_limited_total{listener=api}: got %v, want %d", got, 2*(n-10)+2)
	}
	if got := counterValue(tg.gw.metrics.authFailures); got != 20 {
		t.Errorf("auth_failures_total: got %v, want 20 (refused attempts are not judged)", got)
	}
}

// TestHelloFailuresShareTheBudget: failed agent hellos and failed
// connector calls of an address draw on one budget; an address over it is
// refused at hello, before its token is judged.
func TestHelloFailuresShareTheBudget(t *testing.T) {
	tg := startGateway(t)
	hello := func(h tunnel.Hello) error {
		s := tg.dial(t, tunnel.TransportTCP)
		defer s.Close()
		_, err := sessiontest.Connect(t, s, h, nil)
		return err
	}
	wrong := tg.hello()
	wrong.Token = "oxb_guess"
	for i := range 10 - 1 {
		var rej *tunnel.RejectError
		if err := hello(wrong); !errors.As(err, &rej) || rej.Reject.Code != tunnel.RejectUnauthorized {
			t.Fatalf("wrong hello %d: got %v, want reject unauthorized", i+1, err)
		}
	}
	// The last failure of the budget, on the connector API.
	resp, body := tg.call(t, "GET", "/b/nosuch/jira/x", "oxb_guess", nil, "")
	brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
	resp, body = tg.call(t, "GET", "/b/nosuch/jira/x", "oxb_guess", nil, "")
	brokerError(t, resp, body, http.StatusTooManyRequests, brokerhttp.TooManyFailures)
	// A good hello from the address is refused unjudged.
	var rej *tunnel.RejectError
	err := hello(tg.hello())
	if !errors.As(err, &rej) || rej.Reject.Code != tunnel.RejectUnauthorized || !strings.Contains(rej.Reject.Message, "too many failed") {
		t.Fatalf("good hello from an address over its budget: got %v, want reject unauthorized, too many failed authentications", err)
	}
	if got := counterValue(tg.gw.metrics.authLimited.WithLabelValues("tunnel")); got != 1 {
		t.Errorf("auth_rate_limited_total{listener=tunnel}: got %v, want 1", got)
	}
	if st := tg.status(t, "acme", tg.acmeConnector); len(st.Sessions) != 0 {
		t.Errorf("sessions: got %+v, want none", st.Sessions)
	}
}

// TestBearerSchemeAnyCase: the scheme of Authorization is case-insensitive
// (RFC 9110 §11.1), and one or more spaces separate it from the token
// (§11.4); anything else is a wrong credential.
func TestBearerSchemeAnyCase(t *testing.T) {
	tg, _ := startWithAgent(t, tunnel.TransportTCP)
	tok := tg.acmeConnector
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"Bearer", "Bearer " + tok, 200},
		{"bearer", "bearer " + tok, 200},
		{"BEARER", "BEARER " + tok, 200},
		{"mixed case", "bEaReR " + tok, 200},
		{"two spaces", "Bearer  " + tok, 200},
		{"trailing space", "Bearer " + tok + " ", 200}, // trimmed by the HTTP parser as OWS
		{"no space", "Bearer" + tok, 401},
		{"tab instead of space", "Bearer\t" + tok, 401},
		{"scheme only", "Bearer", 401},
		{"scheme and space only", "Bearer ", 401},
		{"token only", tok, 401},
		{"other scheme", "Basic " + tok, 401},
		{"scheme with a suffix", "Bearers " + tok, 401},
		{"token with a suffix", "Bearer " + tok + "x", 401},
		{"two tokens", "Bearer " + tok + " " + tok, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "GET /b/acme/jira/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nAuthorization: " + tt.header + "\r\n\r\n"
			resp, body := rawRequest(t, tg.api, raw)
			if tt.want == 200 {
				decodeEcho(t, resp, body)
				return
			}
			brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
		})
	}
}
