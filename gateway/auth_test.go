package gateway

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/tunnel"
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

func TestThrottleDoublesToCap(t *testing.T) {
	th := newThrottle()
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second, 5 * time.Second,
	}
	for i, w := range want {
		if got := th.fail("192.0.2.1:40000"); got != w {
			t.Fatalf("failure %d: got delay %s, want %s", i+1, got, w)
		}
	}
	// Many more failures never go past the cap (and the shift never overflows).
	for i := range 1000 {
		if got := th.fail("192.0.2.1:40000"); got != throttleMax {
			t.Fatalf("failure %d: got delay %s, want the cap %s", len(want)+i+1, got, throttleMax)
		}
	}
}

func TestThrottleIsPerIP(t *testing.T) {
	th := newThrottle()
	th.fail("192.0.2.1:1000")
	th.fail("192.0.2.1:1001")
	// Another port of the same address counts as the same caller.
	if got, want := th.fail("192.0.2.1:1002"), 400*time.Millisecond; got != want {
		t.Errorf("third failure from 192.0.2.1 (new port): got %s, want %s", got, want)
	}
	// Another address starts afresh.
	if got, want := th.fail("192.0.2.2:1000"), 100*time.Millisecond; got != want {
		t.Errorf("first failure from 192.0.2.2: got %s, want %s", got, want)
	}
	// IPv6 addresses and bare hosts are keyed by address too.
	th.fail("[2001:db8::1]:1")
	if got, want := th.fail("[2001:db8::1]:2"), 200*time.Millisecond; got != want {
		t.Errorf("second failure from 2001:db8::1: got %s, want %s", got, want)
	}
	th.fail("no-port")
	if got, want := th.fail("no-port"), 200*time.Millisecond; got != want {
		t.Errorf("second failure from an address without port: got %s, want %s", got, want)
	}
}

// TestThrottleWindow runs in a synctest bubble, whose fake clock lets the
// one-minute window pass at once.
func TestThrottleWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle()
		for range 4 {
			th.fail("192.0.2.1:1")
		}
		// Failures closer together than the window keep doubling: the
		// window slides with each failure.
		time.Sleep(throttleWindow - time.Second)
		if got, want := th.fail("192.0.2.1:1"), 1600*time.Millisecond; got != want {
			t.Fatalf("failure within the window: got %s, want %s", got, want)
		}
		time.Sleep(throttleWindow - time.Second)
		if got, want := th.fail("192.0.2.1:1"), 3200*time.Millisecond; got != want {
			t.Fatalf("failure within the window of the last one: got %s, want %s", got, want)
		}
		// A quiet window forgets the address.
		time.Sleep(throttleWindow + time.Second)
		if got, want := th.fail("192.0.2.1:1"), 100*time.Millisecond; got != want {
			t.Fatalf("failure after a quiet window: got %s, want %s", got, want)
		}
		if got, want := th.fail("192.0.2.1:1"), 200*time.Millisecond; got != want {
			t.Fatalf("failure after the reset: got %s, want %s", got, want)
		}
	})
}

func TestThrottleMemoryBound(t *testing.T) {
	th := newThrottle()
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:443", i>>16&0xff, i>>8&0xff, i&0xff) }
	for i := range throttleEntries {
		th.fail(addr(i))
	}
	if got := len(th.entries); got != throttleEntries {
		t.Fatalf("entries after %d addresses: got %d, want %d", throttleEntries, got, throttleEntries)
	}
	// A known address does not make room: its count goes on.
	if got, want := th.fail(addr(0)), 200*time.Millisecond; got != want {
		t.Errorf("second failure of a known address in a full table: got %s, want %s", got, want)
	}
	if got := len(th.entries); got != throttleEntries {
		t.Fatalf("entries after a known address failed again: got %d, want %d", got, throttleEntries)
	}
	// A new address when full forgets everything.
	if got, want := th.fail(addr(throttleEntries)), 100*time.Millisecond; got != want {
		t.Errorf("first failure of a new address: got %s, want %s", got, want)
	}
	if got := len(th.entries); got != 1 {
		t.Fatalf("entries after a new address filled the table: got %d, want 1", got)
	}
	if got, want := th.fail(addr(0)), 100*time.Millisecond; got != want {
		t.Errorf("failure of a forgotten address: got %s, want %s (start over)", got, want)
	}
}

// TestBearerSchemeAnyCase: the scheme of Authorization is case-insensitive
// (RFC 9110 §11.1), and one or more spaces separate it from the token
// (§11.4); anything else is a wrong credential.
func TestBearerSchemeAnyCase(t *testing.T) {
	tg := startGateway(t)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), echoHandler("a1"))
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
