package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/httprecord"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// forward is a request to an internal listener as a replica forwards it.
type forward struct {
	secret, replica                     string // the cluster secret; the id of the replica it is for
	method, target, broker, site, reqID string
	header                              http.Header
	body                                string
	chunked                             bool // the connector gave no length
	at                                  time.Time
}

// raw is f signed and written as it goes on the wire to host.
func (f forward) raw(host string) string {
	var body io.Reader
	length := int64(0)
	if f.body != "" {
		body, length = strings.NewReader(f.body), int64(len(f.body))
		if f.chunked {
			length = -1
		}
	}
	req, err := http.NewRequest(f.method, "http://"+host+f.target, body)
	if err != nil {
		panic(err)
	}
	for k, v := range f.header {
		req.Header[k] = v
	}
	req.Header.Set(brokerhttp.HeaderRequestID, f.reqID)
	c := &cluster{secret: []byte(f.secret)}
	c.sign(req, f.broker, f.site, f.reqID, f.replica, length, f.at)
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		panic(err)
	}
	return b.String()
}

// edit replaces old by new in raw, once; old must be there.
func edit(t *testing.T, raw, old, new string) string {
	t.Helper()
	if !strings.Contains(raw, old) {
		t.Fatalf("%q is not in the request:\n%s", old, raw)
	}
	return strings.Replace(raw, old, new, 1)
}

// dropHeaders removes the header lines of the names from raw.
func dropHeaders(raw string, names ...string) string {
	lines := strings.SplitAfter(raw, "\r\n")
	var out strings.Builder
	for _, l := range lines {
		drop := false
		for _, n := range names {
			if strings.HasPrefix(l, n+":") {
				drop = true
			}
		}
		if !drop {
			out.WriteString(l)
		}
	}
	return out.String()
}

// headerLine returns raw's line of header name, with its CRLF.
func headerLine(t *testing.T, raw, name string) string {
	t.Helper()
	for _, l := range strings.SplitAfter(raw, "\r\n") {
		if strings.HasPrefix(l, name+":") {
			return l
		}
	}
	t.Fatalf("no %s header in:\n%s", name, raw)
	return ""
}

// connectRecorder connects an agent over TCP that keeps what reaches it
// and answers "served" and the request's target. Like the agent, it fails
// a request whose body breaks.
func (tg *testGateway) connectRecorder(t *testing.T) *httprecord.Recorder {
	t.Helper()
	rec := &httprecord.Recorder{Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served "+r.RequestURI)
	})}
	tg.connect(t, tunnel.TransportTCP, tg.hello(), rec)
	return rec
}

// TestClusterInternalAuth: the internal listener serves only requests
// whose head, headers included, carries the cluster signature for this
// replica; it answers anything else 401 (421 what is signed for another
// replica, or by an older one), and nothing of it reaches an agent.
func TestClusterInternalAuth(t *testing.T) {
	a := startReplica(t, redistest.Start(t), newTestTokens(), nil)
	agent := a.connectRecorder(t)

	now := time.Now()
	base := forward{secret: testSecret, replica: a.gw.cluster.id, method: "GET", target: "/b/acme/jira/x?q=1",
		broker: "acme", site: "jira", reqID: "req-1", at: now,
		header: http.Header{"X-Custom": {"kept"}, "X-List": {"1", "2"}, "Accept": {"application/json"}}}
	with := func(change func(*forward)) string {
		f := base
		change(&f)
		return f.raw(a.internal)
	}
	good := func() string { return base.raw(a.internal) }
	v2 := []string{headerClusterSig, headerClusterNonce, headerClusterReplica, headerClusterBody}
	flip := func(raw, name string) string {
		line := headerLine(t, raw, name)
		v := []byte(strings.TrimSpace(strings.TrimPrefix(line, name+":")))
		v[0] ^= 1
		return edit(t, raw, line, name+": "+string(v)+"\r\n")
	}
	unsigned := func(method, target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + a.internal + "\r\n" + brokerhttp.HeaderRequestID + ": req-1\r\n\r\n"
	}
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"good signature (control)", good(), 200},
		{"no signature", unsigned("GET", "/b/acme/jira/x?q=1"), 401},
		{"signed by an older replica (protocol 1 only)", dropHeaders(good(), v2...), 421},
		{"protocol 1 only, wrong mac", flip(dropHeaders(good(), v2...), headerClusterMAC), 401},
		{"no time", dropHeaders(good(), headerClusterTime), 401},
		{"no nonce", dropHeaders(good(), headerClusterNonce), 401},
		{"no replica", dropHeaders(good(), headerClusterReplica), 401},
		{"no body framing", dropHeaders(good(), headerClusterBody), 401},
		{"wrong signature", flip(good(), headerClusterSig), 401},
		{"signature not hex", edit(t, good(), headerClusterSig+": ", headerClusterSig+": zz"), 401},
		{"other secret", with(func(f *forward) { f.secret = "another-secret-of-32-characters-at-least" }), 401},
		{"stale timestamp", with(func(f *forward) { f.at = now.Add(-clusterWindow - 5*time.Second) }), 401},
		{"future timestamp", with(func(f *forward) { f.at = now.Add(clusterWindow + 5*time.Second) }), 401},
		{"timestamp changed", edit(t, good(), headerClusterTime+": "+strconv.FormatInt(now.Unix(), 10), headerClusterTime+": "+strconv.FormatInt(now.Unix()+1, 10)), 401},
		{"nonce changed", flip(good(), headerClusterNonce), 401},
		{"replica changed", flip(good(), headerClusterReplica), 401},
		{"signed for another replica", with(func(f *forward) { f.replica = "another-replica" }), 421},
		{"framing changed", edit(t, good(), headerClusterBody+": none", headerClusterBody+": 5"), 401},
		{"replayed to another path", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "GET /b/acme/jira/y?q=1 "), 401},
		{"replayed to another site", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "GET /b/acme/wiki/x?q=1 "), 401},
		{"replayed to another broker", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "GET /b/other/jira/x?q=1 "), 401},
		{"replayed with another query", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "GET /b/acme/jira/x?q=2 "), 401},
		{"replayed with another method", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "DELETE /b/acme/jira/x?q=1 "), 401},
		{"replayed with another request id", edit(t, good(), brokerhttp.HeaderRequestID+": req-1", brokerhttp.HeaderRequestID+": req-2"), 401},
		{"replayed to the check", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "POST /v1/brokers/acme/sites/jira/check "), 401},
		{"absolute-form", edit(t, good(), "GET /b/acme/jira/x?q=1 ", "GET http://"+a.internal+"/b/acme/jira/x?q=1 "), 401},
		{"header value changed", edit(t, good(), "X-Custom: kept", "X-Custom: kepT"), 401},
		{"header added", edit(t, good(), "X-Custom: kept\r\n", "X-Custom: kept\r\nX-Extra: 1\r\n"), 401},
		{"value added to a header", edit(t, good(), "X-Custom: kept\r\n", "X-Custom: kept\r\nX-Custom: more\r\n"), 401},
		{"header removed", edit(t, good(), "X-Custom: kept\r\n", ""), 401},
		{"values of one header reordered", edit(t, good(), "X-List: 1\r\nX-List: 2\r\n", "X-List: 2\r\nX-List: 1\r\n"), 401},
		{"values of one header joined", edit(t, good(), "X-List: 1\r\nX-List: 2\r\n", "X-List: 1, 2\r\n"), 401},
		{"Connection naming a signed header", edit(t, good(), "X-Custom: kept\r\n", "X-Custom: kept\r\nConnection: X-Custom\r\n"), 401},
		{"headers reordered (the same request)", edit(t, good(), "X-Custom: kept\r\nX-List: 1\r\nX-List: 2\r\n", "X-List: 1\r\nX-List: 2\r\nX-Custom: kept\r\n"), 200},
		{"a header name's case changed (the same request)", edit(t, good(), "X-Custom: kept", "x-cUSTOM: kept"), 200},
		{"empty header added (not forwarded)", edit(t, good(), "X-Custom: kept\r\n", "X-Custom: kept\r\nX-Empty: \r\n"), 200},
		{"a body added", edit(t, good(), "\r\n\r\n", "\r\nContent-Length: 5\r\n\r\nhello"), 401},
		{"unsigned check", unsigned("POST", "/v1/brokers/acme/sites/jira/check"), 401},
		{"unsigned other path", unsigned("GET", "/v1/brokers/acme"), 401},
		{"unsigned root", unsigned("GET", "/"), 401},
	}
	refused := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := agent.Count()
			resp, body := rawRequest(t, a.internal, tt.raw)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.want)
			}
			switch tt.want {
			case 200:
				got := agent.Last(t)
				if string(body) != "served /x?q=1" || agent.Count() != before+1 {
					t.Fatalf("got %q, want the agent's answer", body)
				}
				if got.Header.Get("X-Custom") != "kept" || strings.Join(got.Header["X-List"], ",") != "1,2" {
					t.Errorf("the agent got X-Custom %q, X-List %q; want kept, [1 2]", got.Header.Get("X-Custom"), got.Header["X-List"])
				}
				if _, ok := got.Header["X-Empty"]; ok {
					t.Error("an unsigned empty header reached the agent")
				}
				for k := range got.Header {
					if strings.HasPrefix(k, "Ox-Broker-Cluster") {
						t.Errorf("header %s reached the agent", k)
					}
				}
				return
			case 421:
				brokerError(t, resp, body, http.StatusMisdirectedRequest, brokerhttp.BrokerOffline)
			default:
				refused++
				brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
			}
			if agent.Count() != before {
				t.Error("a refused request reached the agent")
			}
		})
	}
	if got := counterValue(a.gw.metrics.internal.WithLabelValues("401")); int(got) != refused {
		t.Errorf("internal{401}: got %v, want %d", got, refused)
	}
	if !strings.Contains(a.logs.String(), "internal request refused") {
		t.Error("no refusal was logged")
	}
}

// TestClusterReplayRefused: a forwarded request captured on the replica
// network and sent again, within the window, is refused; so is the same
// request sent to another replica.
func TestClusterReplayRefused(t *testing.T) {
	a, b := startTwoReplicas(t)
	agentA, agentB := a.connectRecorder(t), b.connectRecorder(t)
	f := forward{secret: testSecret, replica: a.gw.cluster.id, method: "POST", target: "/b/acme/jira/rest/api/3/issue",
		broker: "acme", site: "jira", reqID: "req-1", body: `{"fields":{}}`, at: time.Now()}
	raw := f.raw(a.internal)
	resp, body := rawRequest(t, a.internal, raw)
	if resp.StatusCode != 200 || agentA.Count() != 1 {
		t.Fatalf("the request: got %d %s, want 200 from the agent", resp.StatusCode, body)
	}
	for range 3 {
		resp, body = rawRequest(t, a.internal, raw)
		brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
	}
	// To another replica: signed for A, not for B.
	resp, body = rawRequest(t, b.internal, raw)
	brokerError(t, resp, body, http.StatusMisdirectedRequest, brokerhttp.BrokerOffline)
	if agentA.Count() != 1 || agentB.Count() != 0 {
		t.Errorf("the agents served %d and %d requests; want the first only", agentA.Count(), agentB.Count())
	}
	if !strings.Contains(a.logs.String(), "replay") {
		t.Error("the replay was not logged")
	}
}

// TestClusterAlteredBodyNeverReachesAgent: a forwarded body altered on the
// replica network (changed, lengthened, shortened, cut) never reaches the
// agent complete: the agent reads an error, not a body; the one sent as
// signed reaches it whole, with the connector's framing.
func TestClusterAlteredBodyNeverReachesAgent(t *testing.T) {
	a := startReplica(t, redistest.Start(t), newTestTokens(), nil)
	agent := a.connectRecorder(t)
	const body = `{"fields":{"summary":"the original body"}}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			f := forward{secret: testSecret, replica: a.gw.cluster.id, method: "POST", target: "/b/acme/jira/rest/api/3/issue",
				broker: "acme", site: "jira", reqID: "req-1", body: body, chunked: chunked}
			raw := func() string { f.at = time.Now(); return f.raw(a.internal) }
			chunk := fmt.Sprintf("%x\r\n%s\r\n", len(body), body)

			resp, got := rawRequest(t, a.internal, raw())
			r := agent.Last(t)
			if resp.StatusCode != 200 || r.BodyErr != nil || string(r.Body) != body {
				t.Fatalf("as signed: got %d %s; the agent read %q, %v; want 200 and the whole body", resp.StatusCode, got, r.Body, r.BodyErr)
			}
			if wantLen := int64(len(body)); !chunked && r.ContentLength != wantLen || chunked && r.ContentLength != -1 {
				t.Errorf("the agent's Content-Length: got %d, want the connector's (%v)", r.ContentLength, map[bool]string{true: "chunked", false: strconv.Itoa(len(body))}[chunked])
			}

			altered := strings.Replace(body, "original", "replaced", 1)
			tests := []struct {
				name string
				raw  string
			}{
				{"changed", edit(t, raw(), chunk, fmt.Sprintf("%x\r\n%s\r\n", len(altered), altered))},
				{"lengthened", edit(t, raw(), chunk, fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n", len(body), body, 5, "extra"))},
				{"shortened", edit(t, raw(), chunk, fmt.Sprintf("%x\r\n%s\r\n", len(body)-1, body[:len(body)-1]))},
				{"trailer removed", dropHeaders(raw(), trailerClusterBody)},
				{"trailer of another body", spliceTrailer(t, raw(), f.rawOtherBody())},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := agent.Count()
					resp, got := rawRequest(t, a.internal, tt.raw)
					if resp.StatusCode == 200 {
						t.Errorf("got 200 %s, want a refusal", got)
					}
					// The head was good: the request went on, and its body
					// broke on the way.
					testwait.For(t, 5*time.Second, "the agent's read ends", func() bool { return agent.Count() == before+1 })
					if r := agent.Last(t); r.BodyErr == nil {
						t.Fatalf("the agent read the whole body %q", r.Body)
					} else {
						t.Logf("answered %d %s; the agent read %d bytes, then: %v", resp.StatusCode, strings.TrimSpace(string(got)), len(r.Body), r.BodyErr)
					}
				})
			}
			t.Run("cut", func(t *testing.T) {
				// The connection ends in the middle of the body: the agent
				// reads an error.
				before := agent.Count()
				cut := raw()
				cut = cut[:strings.Index(cut, chunk)+len(chunk)]
				c, err := net.Dial("tcp", a.internal)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, cut)
				testwait.For(t, 5*time.Second, "the request reaches the agent", func() bool { return agent.Begun() > before })
				c.Close()
				testwait.For(t, 5*time.Second, "the agent's read ends", func() bool { return agent.Count() == before+1 })
				if r := agent.Last(t); r.BodyErr == nil {
					t.Fatalf("the agent read the whole body %q from a cut request", r.Body)
				}
			})
		})
	}
}

// rawOtherBody is f with another body, validly signed.
func (f forward) rawOtherBody() string {
	f.reqID, f.body, f.at = "req-9", "another body", time.Now()
	return f.raw("gw")
}

// spliceTrailer puts the body signature of from into raw.
func spliceTrailer(t *testing.T, raw, from string) string {
	t.Helper()
	return edit(t, raw, headerLine(t, raw, trailerClusterBody), headerLine(t, from, trailerClusterBody))
}

// TestClusterSignatureFromOlderReplicas: what a replica forwards still
// carries the signature of protocol 1, so that an older replica takes it
// during a rolling upgrade.
func TestClusterSignatureFromOlderReplicas(t *testing.T) {
	c := &cluster{secret: []byte(testSecret), id: "me"}
	req, _ := http.NewRequest("POST", "http://replica/b/acme/jira/x?y=1", strings.NewReader("body"))
	req.Header.Set(brokerhttp.HeaderRequestID, "req-1")
	now := time.Now()
	c.sign(req, "acme", "jira", "req-1", "me", 4, now)
	req.RequestURI = req.URL.RequestURI()
	if err := c.verifyV1(req, "acme", "jira", now); err != nil {
		t.Errorf("the protocol 1 signature of a forwarded request: %v", err)
	}
}

// TestVerifiedBody: a body handed on equals the body signed, whatever the
// read sizes; a body that does not match ends in an error, and one of a
// known length is never handed on whole.
func TestVerifiedBody(t *testing.T) {
	c := &cluster{secret: []byte(testSecret)}
	sig := make([]byte, 32)
	rand.Read(sig)
	sign := func(body string) string {
		m := c.bodyMAC(sig)
		io.WriteString(m, body)
		return hex.EncodeToString(m.Sum(nil))
	}
	bodies := []string{"x", "ab", strings.Repeat("0123456789", 1000)}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, body := range bodies {
		for name, wrap := range readers {
			for _, known := range []bool{true, false} {
				for _, altered := range []bool{false, true} {
					t.Run(fmt.Sprintf("%d bytes/%s/known=%v/altered=%v", len(body), name, known, altered), func(t *testing.T) {
						sent := body
						if altered {
							sent = "Y" + body[1:]
						}
						req := &http.Request{Trailer: http.Header{}}
						src := &trailerAtEOF{r: wrap(strings.NewReader(sent)), trailer: req.Trailer, value: sign(body)}
						want := int64(-1)
						if known {
							want = int64(len(body))
						}
						vb := &verifiedBody{ReadCloser: io.NopCloser(src), req: req, mac: c.bodyMAC(sig), want: want}
						got, err := io.ReadAll(iotest.OneByteReader(vb))
						if !altered {
							if err != nil || string(got) != body {
								t.Fatalf("got %d bytes, %v; want the body", len(got), err)
							}
							return
						}
						if !errors.Is(err, errBodySignature) {
							t.Errorf("got %v, want %v", err, errBodySignature)
						}
						if known && len(got) >= len(body) {
							t.Errorf("%d bytes of a %d-byte body were handed on; want the last held back", len(got), len(body))
						}
					})
				}
			}
		}
	}
}

// trailerAtEOF is a body whose trailer arrives with its end, as
// net/http's does.
type trailerAtEOF struct {
	r       io.Reader
	trailer http.Header
	value   string
}

func (b *trailerAtEOF) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.trailer.Set(trailerClusterBody, b.value)
	}
	return n, err
}

// TestNonceCache: a nonce is refused again for at least twice the window
// (as long as its request's time can pass), forgotten later; a full cache
// refuses rather than forgets.
func TestNonceCache(t *testing.T) {
	c := newNonceCache(3)
	now := time.Now()
	n := func(i int) string { return fmt.Sprintf("%032x", i) }
	if err := c.add(n(1), now); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, clusterWindow, 2*clusterWindow - time.Second, 2 * clusterWindow, 3 * clusterWindow} {
		if err := c.add(n(1), now.Add(d)); !errors.Is(err, errReplayed) {
			t.Errorf("the nonce again after %s: got %v, want %v", d, err, errReplayed)
		}
	}
	if err := c.add(n(1), now.Add(8*clusterWindow)); err != nil {
		t.Errorf("the nonce after 8 windows: got %v, want it forgotten", err)
	}
	later := now.Add(8 * clusterWindow)
	c.add(n(2), later)
	c.add(n(3), later)
	if err := c.add(n(4), later); !errors.Is(err, errReplayCacheFull) {
		t.Errorf("a fourth nonce in a cache of three: got %v, want %v", err, errReplayCacheFull)
	}
	for _, bad := range []string{"", "zz", n(1)[:30], n(1) + "00"} {
		if err := c.add(bad, later); !errors.Is(err, errBadSignature) {
			t.Errorf("nonce %q: got %v, want %v", bad, err, errBadSignature)
		}
	}
}

// BenchmarkVerifiedBody is what checking a forwarded body costs the
// replica that receives it: its HMAC as it streams, per byte.
func BenchmarkVerifiedBody(b *testing.B) {
	c := &cluster{secret: []byte(testSecret)}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	m := c.bodyMAC(nil)
	m.Write(body)
	trailer := hex.EncodeToString(m.Sum(nil))
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := &http.Request{Trailer: http.Header{}}
		src := &trailerAtEOF{r: bytes.NewReader(body), trailer: req.Trailer, value: trailer}
		vb := &verifiedBody{ReadCloser: io.NopCloser(src), req: req, mac: c.bodyMAC(nil), want: int64(len(body))}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{vb}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignHead is what signing a forwarded call's head costs, with
// the headers of a typical Jira call.
func BenchmarkSignHead(b *testing.B) {
	c := &cluster{secret: []byte(testSecret), id: "replica"}
	h := http.Header{"Accept": {"application/json"}, "Content-Type": {"application/json"}, "User-Agent": {"python-requests/2.31"},
		"X-Atlassian-Token": {"no-check"}, "Accept-Encoding": {"gzip, deflate"}, brokerhttp.HeaderRequestID: {"0123456789abcdef01234567"}}
	req, _ := http.NewRequest("GET", "http://replica/b/acme/jira/rest/api/3/issue/OX-1?expand=names", nil)
	req.Header = h
	for b.Loop() {
		c.sign(req, "acme", "jira", "0123456789abcdef01234567", "replica", 0, time.Now())
	}
}
