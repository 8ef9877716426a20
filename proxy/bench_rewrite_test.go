package proxy

import (
	"context"
	"maps"
	"net/http"
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
	p := benchProxy(b, testSite("https://jira.example.com/base"), Options{})
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

// BenchmarkRequestHeaderAllowlist measures the request header allowlist
// alone (issue 12, finding 1) on the headers of a typical connector call:
// what the connector and the gateway send, some of it dropped. The copy
// of the headers into the request is part of each iteration, as
// ReverseProxy clones them for every request.
func BenchmarkRequestHeaderAllowlist(b *testing.B) {
	site := testSite("https://jira.example.com")
	site.Allow.Headers = []string{"X-Acme-Trace"}
	p := benchProxy(b, site, Options{})
	in := http.Header{
		"Accept":               {"application/json"},
		"Accept-Encoding":      {"gzip"},
		"Accept-Language":      {"en-US"},
		"Authorization":        {"Bearer " + connectorToken},
		"Content-Type":         {"application/json"},
		"Ox-Broker-Request-Id": {"0123456789abcdef01234567"},
		"Ox-Broker-Site":       {"jira-test"},
		"Traceparent":          {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"User-Agent":           {"ox-connector/1.0"},
		"X-Acme-Trace":         {"t-1"},
		"X-Atlassian-Token":    {"no-check"},
		"X-Forwarded-For":      {"10.0.0.1"},
	}
	h := make(http.Header, len(in))
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		maps.Copy(h, in)
		p.filterRequestHeader(h)
		// Accept, Accept-Language, Content-Type, User-Agent, X-Acme-Trace
		// and X-Atlassian-Token; Accept-Encoding is the agent's own.
		if len(h) != 6 {
			b.Fatalf("%d headers left, want 6: %v", len(h), h)
		}
	}
}
