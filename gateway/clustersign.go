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
	"time"
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
