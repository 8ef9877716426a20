package proxy

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/http/httputil"
	"testing"
)

// BenchmarkProxyRewrite measures the proxy's own work on a request, with
// no network: the checks (path normalisation and the allowlist) and the
// rewrite (upstream URL, header scrub, credentials) that ReverseProxy
// calls on its clone of the request. BenchmarkProxyGET adds the round
// trip to Jira.
func BenchmarkProxyRewrite(b *testing.B) {
	p, err := New(testSite("https://jira.example.com/base"), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	in := httptest.NewRequest("GET", "/rest/api/3/issue/ABC-123?fields=summary,status", nil)
	in.Header.Set("Authorization", "Bearer "+connectorToken)
	in.Header.Set("Ox-Broker-Request-Id", "req-bench")
	in.Header.Set("Ox-Broker-Site", "jira-test")
	in.Header.Set("Accept", "application/json")
	in.Header.Set("X-Forwarded-For", "10.0.0.1")
	in.Header.Set("User-Agent", "ox-connector/1.0")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ex := &exchange{}
		if code, msg := p.check(in, ex); code != "" {
			b.Fatalf("check: %s %s", code, msg)
		}
		pr := &httputil.ProxyRequest{In: in, Out: in.Clone(ctx)}
		p.rewrite(pr)
		if pr.Out.URL.Host != "jira.example.com" {
			b.Fatalf("rewritten to %s", pr.Out.URL)
		}
	}
}
