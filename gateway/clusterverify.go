package gateway

import (
	"crypto/hmac"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// verify checks a request that reached the internal listener, before
// anything of it goes on, and returns the request to serve: the same,
// with its body checked as it is read and framed as the connector framed
// it, empty header values removed. Errors are the reasons listed in
// clustersign.go; a signature is compared in constant time, and only a
// request with a good one reaches the replay cache.
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
