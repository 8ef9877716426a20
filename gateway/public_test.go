package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
)

func TestPublicBaseOf(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		trusted   []string
		remote    string
		host      string
		tls       bool
		header    http.Header
		want      string
	}{
		{name: "public_url wins", publicURL: "https://broker.ox.security/", remote: "10.1.2.3:5000", host: "internal:8080",
			header: http.Header{"X-Forwarded-Host": {"evil.example"}}, want: "https://broker.ox.security"},
		{name: "request host", remote: "203.0.113.7:5000", host: "gw.example:8080", want: "http://gw.example:8080"},
		{name: "TLS", remote: "203.0.113.7:5000", host: "gw.example", tls: true, want: "https://gw.example"},
		{name: "forwarded from an untrusted address", trusted: []string{"10.0.0.0/8"}, remote: "203.0.113.7:5000", host: "gw.example",
			header: http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}}, want: "http://gw.example"},
		{name: "forwarded without trusted_proxies", remote: "10.1.2.3:5000", host: "gw.example",
			header: http.Header{"X-Forwarded-Host": {"evil.example"}}, want: "http://gw.example"},
		{name: "forwarded from a trusted proxy", trusted: []string{"10.0.0.0/8"}, remote: "10.1.2.3:5000", host: "internal:8080",
			header: http.Header{"X-Forwarded-Host": {"broker.ox.security"}, "X-Forwarded-Proto": {"https"}}, want: "https://broker.ox.security"},
		{name: "the trusted proxy's value is the last", trusted: []string{"10.1.2.3"}, remote: "10.1.2.3:5000", host: "internal",
			header: http.Header{"X-Forwarded-Host": {"evil.example, broker.ox.security"}, "X-Forwarded-Proto": {"http", "HTTPS"}}, want: "https://broker.ox.security"},
		{name: "trusted IPv6 proxy", trusted: []string{"fd00::/8"}, remote: "[fd00::1]:5000", host: "internal",
			header: http.Header{"X-Forwarded-Host": {"broker.ox.security"}}, want: "http://broker.ox.security"},
		{name: "forwarded host with a path", trusted: []string{"10.0.0.0/8"}, remote: "10.1.2.3:5000", host: "internal",
			header: http.Header{"X-Forwarded-Host": {"evil.example/x"}}, want: ""},
		{name: "forwarded host with user info", trusted: []string{"10.0.0.0/8"}, remote: "10.1.2.3:5000", host: "internal",
			header: http.Header{"X-Forwarded-Host": {"u@evil.example"}}, want: ""},
		{name: "forwarded proto not http", trusted: []string{"10.0.0.0/8"}, remote: "10.1.2.3:5000", host: "internal",
			header: http.Header{"X-Forwarded-Proto": {"javascript"}}, want: ""},
		{name: "empty host", remote: "203.0.113.7:5000", host: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb, err := newPublicBase(&config.Gateway{PublicURL: tt.publicURL, TrustedProxies: tt.trusted})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/b/acme/jira/rest/api/3/myself", nil)
			r.RemoteAddr, r.Host = tt.remote, tt.host
			r.TLS = nil
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tt.header {
				r.Header[k] = v
			}
			if got := pb.of(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPublicBaseHeader: the agent is told the public base of each call;
// the connector cannot choose it, and a trusted proxy can.
func TestPublicBaseHeader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGatewayWith(t, newTestTokens(), func(c *config.Gateway, _ *Options) {
				c.TrustedProxies = []string{"127.0.0.1/32"}
			})
			tg.connect(t, tr, tg.hello(), echoHandler("a1"))

			resp, b := tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector,
				http.Header{brokerhttp.HeaderPublicBase: {"https://evil.example"}}, "")
			e := decodeEcho(t, resp, b)
			if got, want := e.Header.Values(brokerhttp.HeaderPublicBase), []string{"http://" + tg.api}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("%s at the agent: got %q, want %q", brokerhttp.HeaderPublicBase, got, want)
			}

			resp, b = tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector,
				http.Header{"X-Forwarded-Host": {"broker.ox.security"}, "X-Forwarded-Proto": {"https"}}, "")
			e = decodeEcho(t, resp, b)
			if got, want := e.Header.Get(brokerhttp.HeaderPublicBase), "https://broker.ox.security"; got != want {
				t.Errorf("behind a trusted proxy: got %q, want %q", got, want)
			}
		})
	}
	tg := startGatewayWith(t, newTestTokens(), func(c *config.Gateway, _ *Options) { c.PublicURL = "https://broker.ox.security/" })
	tg.connect(t, "tcp", tg.hello(), echoHandler("a1"))
	resp, b := tg.call(t, "GET", "/b/acme/jira/rest/api/3/myself", tg.acmeConnector, nil, "")
	if got, want := decodeEcho(t, resp, b).Header.Get(brokerhttp.HeaderPublicBase), "https://broker.ox.security"; got != want {
		t.Errorf("with public_url: got %q, want %q", got, want)
	}
}
