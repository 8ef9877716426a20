package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// The signature of forwarded requests (cluster protocol 2). A replica that
// forwards a call signs, with the cluster secret:
//
//   - its head: method, request target, broker, site, request id, a time,
//     a random nonce, the id of the replica it is meant for, how its body
//     is framed, and every header it carries (canonical form below), in
//     Ox-Broker-Cluster-Signature;
//   - its body, streamed, in the trailer Ox-Broker-Cluster-Body-Signature
//     (a body is always sent chunked for it; its length, when the
//     connector gave one, is in the signed head).
//
// The receiving replica checks the head before anything reaches an agent,
// refuses a nonce it has seen within the window, and ends the body towards
// the agent only once the trailer has been checked (holding back the last
// byte of a body of known length): a body altered on the way never
// reaches the agent complete (the agent aborts its Jira request on a cut
// stream).
//
// Older replicas signed only the request line's fields (protocol 1,
// Ox-Broker-Cluster-Mac). Replicas still add that signature to what they
// forward, so that older ones take their calls during a rolling upgrade,
// and answer a call that carries only it with 421: the older replica that
// sent it routes the call elsewhere (docs/security.md, "Internal
// listener").

// Headers of a forwarded request. Like every Ox-Broker-* header, a
// connector cannot send them: the gateway strips those.
const (
	headerClusterTime    = "Ox-Broker-Cluster-Time"           // unix seconds
	headerClusterMAC     = "Ox-Broker-Cluster-Mac"            // protocol 1: hex HMAC-SHA256 of the request line's fields
	headerClusterNonce   = "Ox-Broker-Cluster-Nonce"          // 128 random bits, hex
	headerClusterReplica = "Ox-Broker-Cluster-Replica"        // the id of the replica the request is for
	headerClusterBody    = "Ox-Broker-Cluster-Body"           // "none", the body's length, or "chunked" (unknown length)
	headerClusterSig     = "Ox-Broker-Cluster-Signature"      // hex HMAC-SHA256 of the head
	trailerClusterBody   = "Ox-Broker-Cluster-Body-Signature" // hex HMAC-SHA256 of the body
	bodyNone             = "none"
	bodyChunked          = "chunked"
	macContext           = "oxbroker-cluster-v1" // protocol 1
	macContextHead       = "oxbroker-cluster-v2"
	macContextBody       = "oxbroker-cluster-v2 body"
	nonceLen             = 16
	// replayEntries bounds each half of the replay cache: 2^19 requests
	// within twice the window is some 8,700 forwarded requests a second
	// taken by one replica, in some 40 MiB at most.
	replayEntries = 1 << 19
)

// Reasons a forwarded request is refused, for the log.
var (
	errNoSignature     = errors.New("no signature")
	errStaleRequest    = errors.New("timestamp outside the window")
	errBadSignature    = errors.New("wrong signature")
	errReplayed        = errors.New("nonce seen before (a replay)")
	errBadFraming      = errors.New("the body is not framed as signed")
	errOlderReplica    = errors.New("signed by an older replica (cluster protocol 1), which does not sign the body")
	errOtherReplica    = errors.New("signed for another replica (a stale session record, or a replay)")
	errReplayCacheFull = errors.New("too many forwarded requests within the replay window")
	errBodySignature   = errors.New("the forwarded body does not match its signature")
	errBodyLength      = errors.New("the forwarded body does not have the signed length")
)

// head is what the signature of a request's head covers besides its
// headers.
type head struct {
	method, target, broker, site, requestID string
	time, nonce, replica, body              string
}

// headMAC is the signature of a request's head: the lines of its fields,
// each followed by "\n", then its headers in canonical form.
func (c *cluster) headMAC(f head, h http.Header) []byte {
	m := hmac.New(sha256.New, c.secret)
	// No field can hold a newline: they come from a request line, names,
	// ids, digits and hex, and header values cannot hold one.
	for _, s := range []string{macContextHead, f.method, f.target, f.broker, f.site, f.requestID, f.time, f.nonce, f.replica, f.body} {
		io.WriteString(m, s)
		m.Write([]byte{'\n'})
	}
	writeCanonicalHeaders(m, h)
	return m.Sum(nil)
}

// writeCanonicalHeaders writes the header fields of h that the signature
// covers, one "name:value\n" line per value: names in lower case and
// sorted, the values of one name in the order they are sent, trimmed as
// on the wire. It leaves out the framing fields that net/http writes and
// reads itself (Host, Content-Length, Transfer-Encoding, Trailer), the
// signature, and empty values (a User-Agent set empty is not sent at
// all); the receiver removes empty values before the request goes on.
// Reordering the values of one name changes the form; reordering names
// does not, nor does their case.
func writeCanonicalHeaders(w io.Writer, h http.Header) {
	type field struct{ lower, key string }
	fields := make([]field, 0, len(h))
	size := 0
	for k, vs := range h {
		lower := strings.ToLower(k)
		switch lower {
		case "host", "content-length", "transfer-encoding", "trailer", lowerClusterSig:
			continue
		}
		fields = append(fields, field{lower, k})
		for _, v := range vs {
			size += len(lower) + len(v) + 2
		}
	}
	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.lower, b.lower); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	b := make([]byte, 0, size)
	for _, f := range fields {
		for _, v := range h[f.key] {
			if v = wireValue(v); v != "" {
				b = append(append(append(append(b, f.lower...), ':'), v...), '\n')
			}
		}
	}
	w.Write(b)
}

var lowerClusterSig = strings.ToLower(headerClusterSig)

// wireValue is a header value as net/http writes it and reads it back.
func wireValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = newlineToSpace.Replace(v)
	}
	return strings.Trim(v, " \t")
}

var newlineToSpace = strings.NewReplacer("\r", " ", "\n", " ")

// macV1 is the signature of protocol 1: the request line's fields, the
// request id and the time.
func (c *cluster) macV1(method, target, broker, site, requestID, ts string) []byte {
	m := hmac.New(sha256.New, c.secret)
	for _, f := range []string{macContext, method, target, broker, site, requestID, ts} {
		io.WriteString(m, f)
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// sign makes out, a request to the replica with id replica, signed: it
// sets the signature headers and, when out has a body, sends it chunked
// with the body's signature as its trailer. length is the body's length
// as the connector gave it (-1: unknown); out.Header is final.
func (c *cluster) sign(out *http.Request, broker, site, requestID, replica string, length int64, now time.Time) {
	h := out.Header
	if _, ok := h["User-Agent"]; !ok {
		// Else net/http sends one of its own, unsigned.
		h.Set("User-Agent", "")
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	target := out.URL.RequestURI()
	h.Set(headerClusterTime, ts)
	h.Set(headerClusterMAC, hex.EncodeToString(c.macV1(out.Method, target, broker, site, requestID, ts)))
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	f := head{method: out.Method, target: target, broker: broker, site: site, requestID: requestID,
		time: ts, nonce: hex.EncodeToString(nonce), replica: replica, body: bodyNone}
	if out.Body != nil && out.Body != http.NoBody {
		f.body = bodyChunked
		if length > 0 {
			f.body = strconv.FormatInt(length, 10)
		}
	}
	h.Set(headerClusterNonce, f.nonce)
	h.Set(headerClusterReplica, f.replica)
	h.Set(headerClusterBody, f.body)
	sig := c.headMAC(f, h)
	h.Set(headerClusterSig, hex.EncodeToString(sig))
	out.Trailer = nil
	if f.body == bodyNone {
		out.Body, out.ContentLength = nil, 0
		return
	}
	out.ContentLength = -1 // chunked, for the trailer
	out.Trailer = http.Header{trailerClusterBody: nil}
	out.Body = &signingBody{ReadCloser: out.Body, mac: c.bodyMAC(sig), trailer: out.Trailer}
}

// bodyMAC starts the signature of a body whose head has signature sig.
func (c *cluster) bodyMAC(sig []byte) hash.Hash {
	m := hmac.New(sha256.New, c.secret)
	io.WriteString(m, macContextBody+"\n")
	m.Write(sig)
	return m
}

// signingBody signs a forwarded body as it is sent, and puts the
// signature in the trailer once the body has ended; net/http sends the
// trailer after the body's EOF.
type signingBody struct {
	io.ReadCloser
	mac     hash.Hash
	trailer http.Header
}

func (b *signingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mac.Write(p[:n])
	if err == io.EOF {
		b.trailer.Set(trailerClusterBody, hex.EncodeToString(b.mac.Sum(nil)))
	}
	return n, err
}

// verify checks a request that reached the internal listener, before
// anything of it goes on, and returns the request to serve: the same,
// with its body checked as it is read and framed as the connector framed
// it, empty header values removed. Errors are the reasons above; a
// signature is compared in constant time, and only a request with a good
// one reaches the replay cache.
func (c *cluster) verify(r *http.Request, broker, site string, now time.Time) (*http.Request, error) {
	sig := r.Header.Get(headerClusterSig)
	if sig == "" {
		if c.verifyV1(r, broker, site, now) == nil {
			return nil, errOlderReplica
		}
		return nil, errNoSignature
	}
	f := head{method: r.Method, target: r.RequestURI, broker: broker, site: site,
		requestID: r.Header.Get(brokerhttp.HeaderRequestID), time: r.Header.Get(headerClusterTime),
		nonce: r.Header.Get(headerClusterNonce), replica: r.Header.Get(headerClusterReplica), body: r.Header.Get(headerClusterBody)}
	if err := inWindow(f.time, now); err != nil {
		return nil, err
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.headMAC(f, r.Header)) {
		return nil, errBadSignature
	}
	if f.replica != c.id {
		return nil, errOtherReplica
	}
	length, err := signedFraming(r, f.body)
	if err != nil {
		return nil, err
	}
	if err := c.nonces.add(f.nonce, now); err != nil {
		return nil, err
	}
	out := r.WithContext(r.Context())
	out.Header = r.Header.Clone()
	for k, vs := range out.Header {
		if vs = slices.DeleteFunc(vs, func(v string) bool { return wireValue(v) == "" }); len(vs) == 0 {
			delete(out.Header, k)
		} else {
			out.Header[k] = vs
		}
	}
	out.Trailer, out.TransferEncoding = nil, nil
	if length == 0 {
		out.Body, out.ContentLength = http.NoBody, 0
		return out, nil
	}
	out.ContentLength = length
	out.Body = &verifiedBody{ReadCloser: r.Body, req: r, mac: c.bodyMAC(got), want: length}
	return out, nil
}

// signedFraming checks that r's body is framed as its signed head says,
// and returns the length to forward it with: 0 without a body, -1 when
// unknown.
func signedFraming(r *http.Request, decl string) (int64, error) {
	chunked := len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked"
	switch decl {
	case bodyNone:
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			return 0, errBadFraming
		}
		return 0, nil
	case bodyChunked:
		if !chunked {
			return 0, errBadFraming
		}
		return -1, nil
	}
	n, err := strconv.ParseInt(decl, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != decl || !chunked {
		return 0, errBadFraming
	}
	return n, nil
}

// verifyV1 checks a signature of protocol 1.
func (c *cluster) verifyV1(r *http.Request, broker, site string, now time.Time) error {
	ts, sig := r.Header.Get(headerClusterTime), r.Header.Get(headerClusterMAC)
	if ts == "" || sig == "" {
		return errNoSignature
	}
	if err := inWindow(ts, now); err != nil {
		return err
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.macV1(r.Method, r.RequestURI, broker, site, r.Header.Get(brokerhttp.HeaderRequestID), ts)) {
		return errBadSignature
	}
	return nil
}

// inWindow checks that ts (unix seconds) is within clusterWindow of now.
func inWindow(ts string, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 {
		return errStaleRequest
	}
	if d := now.Unix() - sec; d > int64(clusterWindow/time.Second) || d < -int64(clusterWindow/time.Second) {
		return errStaleRequest
	}
	return nil
}

// verifiedBody checks a forwarded body against the signature in its
// trailer as it is read, and ends it (EOF) only when it matches. A body of
// a known length has its last byte held back until then, since its
// reader takes it as complete at that length: the agent, behind the
// tunnel, never gets the whole of a body that does not match, only one
// cut short (a chunked one ends with its last chunk, which net/http sends
// after EOF only).
type verifiedBody struct {
	io.ReadCloser
	req  *http.Request // the server's request, whose Trailer net/http fills at the body's end
	mac  hash.Hash
	want int64 // the signed length; -1 when unknown
	n    int64 // bytes read so far
	last [1]byte
	err  error // sticky: the end, or why the body failed
}

func (b *verifiedBody) Read(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case len(p) == 0:
		return 0, nil
	case b.want >= 0 && b.n >= b.want-1:
		return b.readLast(p)
	}
	buf := p
	if b.want >= 0 {
		buf = p[:min(int64(len(p)), b.want-1-b.n)]
	}
	n, err := b.ReadCloser.Read(buf)
	b.mac.Write(buf[:n])
	b.n += int64(n)
	if err == io.EOF {
		err = b.check()
		if err == nil {
			err = io.EOF
		}
	}
	b.err = err
	return n, err
}

// readLast reads the last byte of a body of known length and the end of
// the body, with its trailer, and hands the byte on only if the body
// matches its signature.
func (b *verifiedBody) readLast(p []byte) (int, error) {
	got := b.n == b.want
	for {
		var buf []byte
		if got {
			buf = make([]byte, 1) // anything more is too long
		} else {
			buf = b.last[:]
		}
		n, err := b.ReadCloser.Read(buf)
		if n > 0 {
			b.mac.Write(buf[:n])
			b.n++
			got = true
		}
		if b.n > b.want {
			b.err = errBodyLength
			return 0, b.err
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.err = b.check(); b.err != nil {
		return 0, b.err
	}
	b.err = io.EOF
	p[0] = b.last[0]
	return 1, nil
}

// check compares the body read with its trailer's signature.
func (b *verifiedBody) check() error {
	if b.want >= 0 && b.n != b.want {
		return errBodyLength
	}
	got, err := hex.DecodeString(b.req.Trailer.Get(trailerClusterBody))
	if err != nil || !hmac.Equal(got, b.mac.Sum(nil)) {
		return errBodySignature
	}
	return nil
}

// nonceCache remembers the nonces of accepted requests for at least
// twice clusterWindow, as long as a request's time can stay acceptable,
// in two halves that age in turn. Only requests with a good signature get
// in; at max in a half, requests are refused until it ages (fail closed:
// forgetting a nonce early would allow its replay).
type nonceCache struct {
	max       int
	mu        sync.Mutex // guards the rest
	cur, prev map[[nonceLen]byte]struct{}
	since     time.Time // when cur began
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, cur: make(map[[nonceLen]byte]struct{}), prev: make(map[[nonceLen]byte]struct{})}
}

// add records nonce (hex) at now, or says why it cannot.
func (c *nonceCache) add(nonce string, now time.Time) error {
	var k [nonceLen]byte
	if b, err := hex.DecodeString(nonce); err != nil || len(b) != nonceLen {
		return errBadSignature
	} else {
		copy(k[:], b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch age := now.Sub(c.since); {
	case age >= 4*clusterWindow:
		clear(c.prev)
		clear(c.cur)
		c.since = now
	case age >= 2*clusterWindow:
		c.prev, c.cur = c.cur, c.prev
		clear(c.cur)
		c.since = now
	}
	if _, ok := c.cur[k]; ok {
		return errReplayed
	}
	if _, ok := c.prev[k]; ok {
		return errReplayed
	}
	if len(c.cur) >= c.max {
		return errReplayCacheFull
	}
	c.cur[k] = struct{}{}
	return nil
}
