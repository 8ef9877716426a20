package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/copybuf"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

// issueBody returns the stand-in's answer to GET issue/{key}: about 4 KiB
// of JSON with 16 of Jira's links, as Jira gives it through baseURL.
func issueBody(b testing.TB, baseURL string) (body []byte, header http.Header) {
	b.Helper()
	st := jiratest.New(jiratest.Options{})
	key := st.AddIssue("ABC", "A leaked token in the build log")
	rec := httptest.NewRecorder()
	st.ServeHTTP(rec, httptest.NewRequest("GET", baseURL+"/rest/api/2/issue/"+key+"?expand=renderedFields", nil))
	res := rec.Result()
	body, _ = io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(baseURL+"/rest/")) {
		b.Fatalf("issue GET: %d %s", res.StatusCode, body)
	}
	b.Logf("issue GET: %d bytes, %d links to %s/rest/", len(body), bytes.Count(body, []byte(baseURL+"/rest/")), baseURL)
	return body, res.Header
}

// benchIssueProxy returns the proxy of a site at https://jira.acme.local
// whose links are rewritten, and the issue answer of issueBody.
func benchIssueProxy(b *testing.B) (*Proxy, []byte, http.Header) {
	const up = "https://jira.acme.local"
	body, hdr := issueBody(b, up)
	site := testSite(up)
	site.RewriteLinks = true
	return benchProxy(b, site, Options{Broker: testBroker}), body, hdr
}

// benchFilter measures what the proxy adds to one answer of Jira: the
// filtering of its headers and the reading of its body through the
// replacer, with or without link rewriting; baseline only reads the body.
func benchFilter(b *testing.B, mode string) {
	p, body, hdr := benchIssueProxy(b)
	ex := &exchange{operation: "getIssue"}
	if mode == "rewrite" {
		ex.links = p.linksFor(testPublic)
	}
	req := (&http.Request{}).WithContext(context.WithValue(context.Background(), exchangeKey{}, ex))
	rd := bytes.NewReader(body)
	buf := make([]byte, copybuf.Size)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		res := &http.Response{StatusCode: 200, Header: hdr.Clone(), Body: io.NopCloser(rd), ContentLength: int64(len(body)), Request: req}
		if mode != "baseline" {
			if err := p.modifyResponse(res); err != nil {
				b.Fatal(err)
			}
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
	if mode == "rewrite" && ex.replaced[classLink] == 0 {
		b.Fatal("no link rewritten")
	}
}

// BenchmarkResponseFilter is the cost per call of the credential scrub
// and the link rewriting on a 4 KiB issue GET (issues 11 and 12: under
// 5-10 µs): compare rewrite and scrub with baseline.
func BenchmarkResponseFilter(b *testing.B) {
	for _, mode := range []string{"baseline", "scrub", "rewrite"} {
		b.Run(mode, func(b *testing.B) { benchFilter(b, mode) })
	}
}

// BenchmarkGzipRewrite measures the other way of handling gzip: keep
// Jira's gzip and decode, rewrite and encode again for the caller, against
// asking Jira for identity (what the proxy does), on the 4 KiB issue.
func BenchmarkGzipRewrite(b *testing.B) {
	p, body, _ := benchIssueProxy(b)
	r := p.linksFor(testPublic).r
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(body)
	zw.Close()
	b.Logf("issue: %d bytes, %d gzipped", len(body), zipped.Len())
	buf := make([]byte, copybuf.Size)
	b.Run("identity", func(b *testing.B) {
		rd := bytes.NewReader(body)
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(body)
			z := r.NewReader(rd)
			io.CopyBuffer(io.Discard, z, buf)
			z.Close()
		}
	})
	var writers sync.Pool
	b.Run("decode-rewrite-encode", func(b *testing.B) {
		rd := bytes.NewReader(zipped.Bytes())
		zr, _ := gzip.NewReader(rd)
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(zipped.Bytes())
			zr.Reset(rd)
			z := r.NewReader(zr)
			zw, _ := writers.Get().(*gzip.Writer)
			if zw == nil {
				zw, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
			}
			zw.Reset(io.Discard)
			io.CopyBuffer(zw, z, buf)
			zw.Close()
			writers.Put(zw)
			z.Close()
		}
	})
}

// BenchmarkProxyIssueGET is one proxied GET of a 4 KiB issue from the
// stand-in over a kept-alive connection, with the gateway's public base
// (links rewritten) and without it.
func BenchmarkProxyIssueGET(b *testing.B) {
	st := jiratest.New(jiratest.Options{})
	key := st.AddIssue("ABC", "A leaked token in the build log")
	up := httptest.NewServer(st)
	defer up.Close()
	site := testSite(up.URL)
	site.RewriteLinks = true
	p := benchProxy(b, site, Options{Broker: testBroker})
	for _, public := range []string{"", testPublic} {
		name := "no-public-base"
		if public != "" {
			name = "public-base"
		}
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/rest/api/2/issue/"+key, nil)
			req.Header.Set(brokerhttp.HeaderRequestID, "req-bench")
			req.Header.Set("Accept", "application/json")
			if public != "" {
				req.Header.Set(brokerhttp.HeaderPublicBase, public)
			}
			w := &countingWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				p.ServeHTTP(w, req)
			}
			b.SetBytes(w.n / int64(b.N))
		})
	}
}

// countingWriter is a ResponseWriter that counts the bytes of the body.
type countingWriter struct {
	h http.Header
	n int64
}

func (c *countingWriter) Header() http.Header         { return c.h }
func (c *countingWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }
func (c *countingWriter) WriteHeader(int)             {}

// BenchmarkProxyDownload streams a 100 MiB attachment from an httptest
// upstream through the proxy, over plain HTTP and over TLS as from a real
// Jira: the credential scrub reads every byte. Compare its MB/s with the
// same benchmark on a commit before the scrub.
func BenchmarkProxyDownload(b *testing.B) {
	const size = 100 << 20
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for n := 0; n < size; n += len(chunk) {
			w.Write(chunk)
		}
	})
	for _, tlsUp := range []bool{false, true} {
		name := "http"
		if tlsUp {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			up := httptest.NewUnstartedServer(h)
			if tlsUp {
				up.StartTLS()
			} else {
				up.Start()
			}
			defer up.Close()
			site := testSite(up.URL)
			site.TLS.InsecureSkipVerify = tlsUp
			p := benchProxy(b, site, Options{})
			req := httptest.NewRequest("GET", "/rest/api/3/attachment/content/10000", nil)
			req.Header.Set(brokerhttp.HeaderRequestID, "req-bench")
			w := &countingWriter{h: make(http.Header)}
			b.SetBytes(size)
			for b.Loop() {
				clear(w.h)
				w.n = 0
				p.ServeHTTP(w, req)
				if w.n != size {
					b.Fatalf("got %d bytes, want %d", w.n, size)
				}
			}
		})
	}
}
