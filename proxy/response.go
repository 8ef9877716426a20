package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/replace"
	"github.com/oxsecurity/oxbroker/jira"
)

// This file holds what the proxy changes in Jira's answers on their way
// to the caller: it removes the site's credential wherever Jira (or
// something in front of it) reflects it, and rewrites Jira's links to its
// own REST API into links through the gateway. Both are rules of one
// streaming replacer (internal/replace):
//
//   - The credential, in every form jira.CredentialForms names and
//     JSON-escaped, is replaced in every header and trailer and in every
//     body the agent can read (identity or gzip), files included. Its
//     replacement has the same length (redacted), so that Content-Length
//     and Content-Range stay true.
//   - Links are rewritten in the Location, Content-Location and Link
//     headers and in JSON and text bodies that are not files, when the
//     gateway named the public base of the call (Ox-Broker-Public-Base)
//     and the site keeps rewrite_links on. A rewritten body of at most
//     maxHeldBody is read whole and sent with its new Content-Length; a
//     larger one loses its Content-Length: it is sent chunked.
//
// The agent asks Jira for identity encoding (upstreamEncoding), so that
// bodies stream through without being decompressed and compressed again.
// A gzip body that comes all the same is decoded and passed on identity
// encoded; a body in any other encoding cannot be checked for the
// credential and is refused with 502 (errUnreadableEncoding).

// Classes of the replacer's rules, for counting.
const (
	classCredential = 0
	classLink       = 1
)

// upstreamEncoding sets the Accept-Encoding of a request to Jira: identity
// only, whatever the caller accepts. The agent must read every body to
// remove a reflected credential and to rewrite links; compressed bodies
// would cost a decompression and a compression per call (see
// BenchmarkGzipRewrite), and the caller gets identity, which every HTTP
// client accepts. It is its own function so that the request header
// filter around it can change without touching this rule.
func upstreamEncoding(h http.Header) {
	h.Set("Accept-Encoding", "identity")
}

// redactionMark starts the text that replaces a credential.
const redactionMark = "REDACTED"

// redacted returns the replacement of a credential form of n bytes:
// REDACTED followed by '*' up to n bytes, or n '*' when n is shorter. It
// keeps the length so that the body's Content-Length stays true.
func redacted(n int) string {
	if n < len(redactionMark) {
		return strings.Repeat("*", n)
	}
	return redactionMark + strings.Repeat("*", n-len(redactionMark))
}

// jsonEscaped returns s as a JSON encoder that escapes "/" writes it.
func jsonEscaped(s string) string { return strings.ReplaceAll(s, "/", `\/`) }

// credentialRules are the rules that remove the site's credential: each
// form of jira.CredentialForms, and its JSON-escaped spelling when it has
// a "/". A form that holds another (Bearer <token> holds the token) is
// left to the one it holds: replacing that removes the secret, and the
// fewer rules, the faster the scan.
func credentialRules(a config.Auth) []replace.Rule {
	forms := jira.CredentialForms(a)
	var rules []replace.Rule
	for i, f := range forms {
		redundant := false
		for j, g := range forms {
			if j != i && len(g) < len(f) && strings.Contains(f, g) {
				redundant = true
			}
		}
		if redundant {
			continue
		}
		rules = append(rules, replace.Rule{Old: f, New: redacted(len(f)), Class: classCredential})
		if e := jsonEscaped(f); e != f {
			rules = append(rules, replace.Rule{Old: e, New: redacted(len(e)), Class: classCredential})
		}
	}
	return rules
}

// linkBases returns the upstream REST bases whose links are rewritten:
// the site's url, and for a cloud_site its https://<name>.atlassian.net,
// each followed by /rest/.
func linkBases(site config.Site, base *url.URL) []string {
	var bases []string
	add := func(s string) {
		s = strings.TrimRight(s, "/") + "/rest/"
		for _, b := range bases {
			if b == s {
				return
			}
		}
		bases = append(bases, s)
	}
	add(site.URL)
	// As Jira would write it: scheme and host in lower case.
	add(strings.ToLower(base.Scheme) + "://" + strings.ToLower(base.Host) + base.EscapedPath())
	if site.CloudSite != "" {
		if u, err := jira.CloudSiteURL(site.CloudSite); err == nil {
			add(u.String())
		}
	}
	return bases
}

// links is the replacer of one public base: the credential rules and the
// link rules that point the site's links at that base.
type links struct {
	base string // Ox-Broker-Public-Base
	r    *replace.Replacer
	// pathPrefix is the upstream's REST path ("/jira/rest/"), and
	// siteREST the public URL of the site's REST API, for relative
	// Location headers.
	pathPrefix, siteREST string
}

// linksFor returns the replacer of public base, which CheckPublicBase
// accepted. The last one built is kept: the base rarely changes.
func (p *Proxy) linksFor(base string) *links {
	if l := p.links.Load(); l != nil && l.base == base {
		return l
	}
	siteREST := brokerhttp.SiteURL(base, p.broker, p.site) + "/rest/"
	rules := append([]replace.Rule(nil), p.credRules...)
	for _, b := range p.linkBases {
		rules = append(rules,
			replace.Rule{Old: b, New: siteREST, Class: classLink},
			replace.Rule{Old: jsonEscaped(b), New: jsonEscaped(siteREST), Class: classLink})
	}
	l := &links{base: base, r: replace.New(rules...), pathPrefix: p.basePath + "/rest/", siteREST: siteREST}
	p.links.Store(l)
	return l
}

// publicBase returns the link replacer of the call's public base, or nil
// when links are not rewritten: the site turned it off, or the gateway
// sent no valid Ox-Broker-Public-Base (which is logged).
func (p *Proxy) publicBase(r *http.Request, requestID string) *links {
	vs := r.Header.Values(brokerhttp.HeaderPublicBase)
	if !p.rewriteLinks || len(vs) == 0 {
		return nil
	}
	if len(vs) > 1 {
		p.warnBadBase(requestID, "header given more than once")
		return nil
	}
	if l := p.links.Load(); l != nil && l.base == vs[0] {
		return l // checked when it was built
	}
	if err := brokerhttp.CheckPublicBase(vs[0]); err != nil {
		p.warnBadBase(requestID, err.Error())
		return nil
	}
	return p.linksFor(vs[0])
}

func (p *Proxy) warnBadBase(requestID, reason string) {
	if n, ok := p.badBase.allow(time.Now()); ok {
		p.log.Warn("the gateway sent an invalid "+brokerhttp.HeaderPublicBase+"; Jira's links in this answer are not rewritten",
			"request_id", requestID, "reason", reason, "suppressed", n)
	}
}

type exchangeKey struct{}

// modifyResponse is the ReverseProxy's ModifyResponse: it removes from
// Jira's answer what must not leave the customer network or could pass
// for the broker's own headers, removes the reflected credential and
// rewrites links.
func (p *Proxy) modifyResponse(res *http.Response) error {
	ex, _ := res.Request.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil { // not reached: ServeHTTP always sets it
		ex = &exchange{}
	}
	scrubResponseHeader(res.Header)
	p.filterHeader(res.Header, ex.links, ex.replaced[:])

	if res.Body == nil || res.Body == http.NoBody {
		return nil
	}
	var body io.Reader = res.Body
	lengthChanges := false
	switch enc := strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		body = &gunzip{src: res.Body}
		res.Header.Del("Content-Encoding")
		lengthChanges = true
	default:
		return &unreadableEncodingError{encoding: enc}
	}
	r := p.creds
	if ex.links != nil && rewritable(res, ex.operation) {
		r = ex.links.r
		lengthChanges = true
	}
	fb := &filteredBody{Reader: r.NewReader(body), src: res.Body, p: p, ex: ex, res: res}
	res.Body = fb
	if lengthChanges {
		declared := res.ContentLength
		res.Header.Del("Content-Length")
		res.ContentLength = -1
		if declared >= 0 && declared <= maxHeldBody {
			holdWhole(res, fb, int(declared))
		}
	}
	return nil
}

// maxHeldBody bounds the answers that holdWhole reads whole: Jira's
// usual JSON (an issue, a page of search results) is a few KiB to a few
// tens of KiB.
const maxHeldBody = 64 << 10

// holdWhole reads a small answer whose length the filter changes to its
// end, so that it goes on with its new Content-Length in one piece
// instead of chunked: the caller sees a length as Jira sent one, and the
// body crosses the tunnel in one write rather than a chunk per 4 KiB
// buffer (issue 14: a rewritten issue of a little over 4 KiB cost each
// side a write system call and a tunnel frame more). An answer that
// turns out larger than maxHeldBody (a gzip body that inflates), or whose
// reading fails, goes on chunked from where the read stopped: the bytes
// read first, then the rest of the stream or its error, as if it had
// never been held.
func holdWhole(res *http.Response, fb *filteredBody, declared int) {
	held, err := readUpTo(fb, maxHeldBody+1, declared+declared/8+512)
	switch {
	case err != nil:
		res.Body = heldBody{io.MultiReader(bytes.NewReader(held), errReader{err}), fb}
	case len(held) > maxHeldBody:
		res.Body = heldBody{io.MultiReader(bytes.NewReader(held), fb), fb}
	default:
		fb.Close() // at its end: counts the replacements, frees the upstream connection
		res.Body = io.NopCloser(bytes.NewReader(held))
		res.ContentLength = int64(len(held))
		res.Header.Set("Content-Length", strconv.Itoa(len(held)))
	}
}

// readUpTo reads r until EOF or limit bytes into a buffer of hint bytes
// at first: the declared length and room for longer links, so that a
// held answer is read with one allocation where io.ReadAll would grow
// its buffer five times.
func readUpTo(r io.Reader, limit, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(hint, limit))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), 512), limit-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// heldBody is what holdWhole read, then the rest of the filtered body,
// which it closes.
type heldBody struct {
	io.Reader
	fb *filteredBody
}

func (b heldBody) Close() error { return b.fb.Close() }

// errReader returns err on every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// rewritable reports whether a response body may have its links
// rewritten: JSON or text, and not a file (an attachment's content keeps
// its bytes whatever its type).
func rewritable(res *http.Response, operation string) bool {
	if jira.ServesFile(operation) || res.Header.Get("Content-Disposition") != "" {
		return false
	}
	ct, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || strings.HasSuffix(ct, "+json") || strings.HasPrefix(ct, "text/")
}

// linkHeaders are the response headers that carry links.
var linkHeaders = map[string]bool{"Location": true, "Content-Location": true, "Link": true}

// filterHeader removes the credential from h (a header whose name holds
// it is dropped) and, with l, rewrites the links of the link headers,
// relative Location paths under the upstream's REST API included. It
// counts replacements in counts.
func (p *Proxy) filterHeader(h http.Header, l *links, counts []int) {
	for k, vs := range h {
		if p.credInName(k) {
			delete(h, k)
			counts[classCredential]++
			continue
		}
		r := p.creds
		if l != nil && linkHeaders[k] {
			r = l.r
		}
		for i, v := range vs {
			v = r.String(v, counts)
			if l != nil && k != "Link" && linkHeaders[k] {
				if rest, ok := strings.CutPrefix(v, l.pathPrefix); ok {
					v = l.siteREST + rest
					counts[classLink]++
				}
			}
			vs[i] = v
		}
	}
}

// credInName reports whether a header name holds the site's credential.
// Header names are compared without case: Go's canonical form changes the
// case of a reflected token, which does not make it less secret.
func (p *Proxy) credInName(k string) bool {
	for _, r := range p.credRules {
		if len(k) >= len(r.Old) && strings.Contains(strings.ToLower(k), strings.ToLower(r.Old)) {
			return true
		}
	}
	return false
}

// scrubResponseHeader drops Set-Cookie (a Jira session cookie is as good
// as the token) and Ox-Broker-* (only the broker sets those).
func scrubResponseHeader(h http.Header) {
	for k := range h {
		if strings.EqualFold(k, "Set-Cookie") || strings.EqualFold(k, "Set-Cookie2") || hasPrefixFold(k, "Ox-Broker-") {
			delete(h, k)
		}
	}
}

// filteredBody is Jira's response body as it leaves: read through the
// replacer. At its end it adds its counts to the exchange and filters the
// trailers, which the transport fills in once the body has been read and
// ReverseProxy copies after closing it.
type filteredBody struct {
	*replace.Reader
	src  io.ReadCloser
	p    *Proxy
	ex   *exchange
	res  *http.Response
	done bool
}

func (b *filteredBody) Read(buf []byte) (int, error) {
	n, err := b.Reader.Read(buf)
	if err == io.EOF {
		b.filterTrailer()
	}
	return n, err
}

func (b *filteredBody) Close() error {
	err := b.src.Close()
	b.filterTrailer()
	if !b.done {
		b.done = true
		b.ex.replaced[classCredential] += b.Count(classCredential)
		b.ex.replaced[classLink] += b.Count(classLink)
		b.Reader.Close()
	}
	return err
}

func (b *filteredBody) filterTrailer() {
	if len(b.res.Trailer) > 0 {
		scrubResponseHeader(b.res.Trailer)
		b.p.filterHeader(b.res.Trailer, nil, b.ex.replaced[:])
	}
}

// gunzip decodes a gzip body, starting at the first read so that
// ModifyResponse does not wait for the body.
type gunzip struct {
	src io.Reader
	zr  *gzip.Reader
	err error
}

func (g *gunzip) Read(p []byte) (int, error) {
	if g.zr == nil && g.err == nil {
		g.zr, g.err = gzip.NewReader(g.src)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.zr.Read(p)
}

// unreadableEncodingError refuses a response whose Content-Encoding the
// agent cannot decode: it could hide the credential.
type unreadableEncodingError struct{ encoding string }

func (e *unreadableEncodingError) Error() string {
	return fmt.Sprintf("Jira answered with Content-Encoding %q, which the agent did not ask for and cannot read to remove the site's credential; the answer was not passed on", e.encoding)
}

// warnLimiter lets a warning through at most once a minute and counts
// the ones it held back.
type warnLimiter struct {
	last       atomic.Int64 // unix nanoseconds of the last warning let through
	suppressed atomic.Int64
}

const warnEvery = time.Minute

func (l *warnLimiter) allow(now time.Time) (suppressed int64, ok bool) {
	last := l.last.Load()
	if last != 0 && now.UnixNano()-last < int64(warnEvery) || !l.last.CompareAndSwap(last, now.UnixNano()) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// FilterObserver is told, at the end of each response in which the proxy
// changed something, how many links it rewrote and how many times it
// removed the site's credential. An Observer may implement it.
type FilterObserver interface {
	ObserveFiltered(site string, links, credentials int)
}

// reportFiltered tells the observer and logs a reflected credential, at
// the end of the exchange.
func (p *Proxy) reportFiltered(ctx context.Context, ex *exchange) {
	creds, links := ex.replaced[classCredential], ex.replaced[classLink]
	if creds == 0 && links == 0 {
		return
	}
	if o, ok := p.observer.(FilterObserver); ok {
		o.ObserveFiltered(p.site, links, creds)
	}
	if creds == 0 {
		return
	}
	if n, ok := p.reflected.allow(time.Now()); ok {
		p.log.WarnContext(ctx, "Jira's answer held the site's credential (something reflects the Authorization header); it was replaced before the answer left",
			"request_id", ex.requestID, "operation", ex.operation, "replaced", creds, "suppressed", n)
	}
}

// Scrubber removes a site's credential from text, in the forms and with
// the replacement the proxy uses for Jira's answers. It is safe for
// concurrent use.
type Scrubber struct{ r *replace.Replacer }

// NewScrubber returns the Scrubber of a site's credential.
func NewScrubber(a config.Auth) *Scrubber {
	return &Scrubber{r: replace.New(credentialRules(a)...)}
}

// String returns s with the credential replaced.
func (s *Scrubber) String(text string) string { return s.r.String(text, nil) }
