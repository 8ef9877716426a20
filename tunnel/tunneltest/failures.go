package tunneltest

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The helpers below make real failures on loopback, for the tests of how
// the agent classifies and words them (internal/netfail, agent/diag).

// QuietTLSServer starts an HTTPS server on loopback that answers 404 and
// does not log the handshakes that fail: the tests make them fail on
// purpose. It is closed when t ends.
func QuietTLSServer(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// DialErr dials addr over TCP, closes what it got and returns the dial's
// error.
func DialErr(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// HandshakeErr makes a TLS handshake with addr under conf, closes what it
// got and returns the handshake's error.
func HandshakeErr(addr string, conf *tls.Config) error {
	c, err := tls.Dial("tcp", addr, conf)
	if err == nil {
		c.Close()
	}
	return err
}
