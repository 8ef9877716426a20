package diag_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// TestExplain: the words the agent's log can use for a failure to reach
// the gateway or Jira are the check's (docs/operations.md, 7.2), for real
// failures on loopback.
func TestExplain(t *testing.T) {
	srv := tunneltest.QuietTLSServer(t)
	tlsAddr := srv.Listener.Addr().String()
	closed := tunneltest.ClosedAddr(t)
	prx := tunneltest.StartConnectProxy(t, "user", checkProxyPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dial := func(addr string) error { return tunneltest.DialErr(ctx, addr) }
	handshake := func(addr string) error {
		return tunneltest.HandshakeErr(addr, &tls.Config{ServerName: "127.0.0.1"})
	}
	viaProxy := func(pu *url.URL, addr string) error {
		c, err := tunnel.DialProxy(ctx, pu, addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	gw := func(addr string) diag.Target {
		return diag.GatewayTarget(config.GatewayDial{Address: addr, Proxy: prx.URL("user", checkProxyPassword).String()}, addr)
	}
	site := func(rawURL, caFile string) diag.Target {
		return diag.SiteTarget(config.Site{URL: rawURL, TLS: config.SiteTLS{CAFile: caFile}}, checkMustURL(t, rawURL))
	}

	for _, tt := range []struct {
		name   string
		target diag.Target
		err    error
		cause  string
		fix    string
	}{
		{"gateway refused", gw(closed), dial(closed),
			"Connection refused: nothing listens on " + closed + ", or a firewall rejects the connection.",
			"Check gateway.address (the host:port OX gave you) and that the firewall allows outbound TCP to it."},
		{"gateway unknown CA", gw(tlsAddr), handshake(tlsAddr),
			"The gateway's certificate at " + tlsAddr + " is signed by an unknown authority (issuer \"O=Acme Co\").",
			"Set gateway.ca_file to the CA that signed the gateway's certificate."},
		{"gateway name unknown", gw("gw.invalid:443"),
			fmt.Errorf("dial gateway: %w", &net.DNSError{Err: "no such host", Name: "gw.invalid", IsNotFound: true}),
			"DNS has no address for gw.invalid (no such host).",
			"Check the host name in gateway.address and this machine's DNS settings (try: nslookup gw.invalid)."},
		{"proxy wants credentials", gw(tlsAddr), viaProxy(prx.URL("", ""), tlsAddr),
			"The proxy requires authentication (407 Proxy Authentication Required).",
			"Set user:password in gateway.proxy (http://user:password@host:port)."},
		{"proxy cannot reach", gw(closed), viaProxy(prx.URL("user", checkProxyPassword), closed),
			"The proxy could not reach " + closed + " (502 Bad Gateway).",
			"Check gateway.address, and ask your network team whether the proxy may connect to " + closed + "."},
		{"Jira unknown CA", site("https://"+tlsAddr, "/etc/oxbroker/jira-ca.pem"), handshake(tlsAddr),
			"Jira's certificate at " + tlsAddr + " is signed by an unknown authority",
			"Check that tls.ca_file (/etc/oxbroker/jira-ca.pem) holds the CA that signed Jira's certificate."},
		{"Jira refused", site("https://"+closed, ""), dial(closed),
			"Connection refused: nothing listens on " + closed,
			"Check the url's host and port, and that the firewall lets this machine reach Jira (or set proxy if your network requires one)."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no failure to explain")
			}
			w := tt.target.Explain(tt.err, time.Second)
			if !strings.HasPrefix(w.Cause, tt.cause) || w.Fix != tt.fix {
				t.Errorf("%v:\ngot  %q / %q\nwant %q… / %q", tt.err, w.Cause, w.Fix, tt.cause, tt.fix)
			}
		})
	}
}
