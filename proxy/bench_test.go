package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// benchProxy returns the proxy of site for a benchmark: it logs nothing
// unless opts has a logger, and is closed when b ends.
func benchProxy(b testing.TB, site config.Site, opts Options) *Proxy {
	b.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := New(site, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// BenchmarkProxyGET measures one proxied GET: checks, rewrite, credential
// injection, the round trip to an httptest upstream over a kept-alive
// connection, and the response copy. Run with -benchmem.
func BenchmarkProxyGET(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"key":"ABC-1","fields":{"summary":"hello"}}`)
	}))
	defer up.Close()
	p := benchProxy(b, testSite(up.URL), Options{})

	req := httptest.NewRequest("GET", "/rest/api/3/issue/ABC-1?fields=summary", nil)
	req.Header.Set("Authorization", "Bearer "+connectorToken)
	req.Header.Set("Ox-Broker-Request-Id", "req-bench")
	req.Header.Set("Accept", "application/json")
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.ServeHTTP(w, req)
	}
}
