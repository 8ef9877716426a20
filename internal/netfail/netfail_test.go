package netfail_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// TestClassify sorts real failures: dials, handshakes and an HTTP client
// through a proxy, on loopback.
func TestClassify(t *testing.T) {
	tlsSrv := tunneltest.QuietTLSServer(t) // its handshakes below fail on purpose
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	trusted := x509.NewCertPool()
	trusted.AddCert(tlsSrv.Certificate())
	closed := tunneltest.ClosedAddr(t)
	prx := tunneltest.StartConnectProxy(t, "u", "p")

	dial := tunneltest.DialErr
	handshake := tunneltest.HandshakeErr
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	get := func(proxy *url.URL) error {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(tlsSrv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	tlsAddr := strings.TrimPrefix(tlsSrv.URL, "https://")

	tests := []struct {
		name   string
		err    error
		kind   netfail.Kind
		op     string
		reason string
	}{
		{"refused", dial(context.Background(), closed), netfail.Refused, "dial", "connection refused"},
		{"deadline", dial(expired, closed), netfail.Deadline, "dial", ""},
		{"canceled", dial(canceled, closed), netfail.Canceled, "dial", ""},
		{"no such host", fmt.Errorf("dial: %w", &net.DNSError{Err: "no such host", Name: "gw.invalid", IsNotFound: true}), netfail.NoSuchHost, "", "no such host"},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "gw.example", IsTimeout: true}, netfail.DNSTimeout, "", "i/o timeout"},
		{"unknown authority", handshake(tlsAddr, &tls.Config{ServerName: "example.com"}), netfail.UnknownAuthority, "", ""},
		{"wrong name", handshake(tlsAddr, &tls.Config{ServerName: "jira.acme.local", RootCAs: trusted}), netfail.WrongName, "", "jira.acme.local"},
		{"not TLS", handshake(strings.TrimPrefix(plain.URL, "http://"), &tls.Config{ServerName: "x"}), netfail.NotTLS, "", ""},
		{"proxy down", get(&url.URL{Scheme: "http", Host: closed}), netfail.ProxyFailed, "proxyconnect", "connection refused"},
		// net/http says a refused CONNECT in words only: its status is
		// not in the error (tunnel.DialProxy's ProxyError carries it).
		{"proxy refuses", get(prx.URL("", "")), netfail.Other, "", "Proxy Authentication Required"},
		{"closed", fmt.Errorf("read answer: %w", io.ErrUnexpectedEOF), netfail.Closed, "", "unexpected EOF"},
		{"other", errors.New("odd"), netfail.Other, "", "odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error to classify")
			}
			f := netfail.Classify(tt.err)
			if f.Kind != tt.kind || f.Op != tt.op || !strings.Contains(f.Reason, tt.reason) {
				t.Errorf("%v: got kind %d, op %q, reason %q; want %d, %q, reason with %q", tt.err, f.Kind, f.Op, f.Reason, tt.kind, tt.op, tt.reason)
			}
			if f.Kind.TLS() && f.Kind != netfail.NotTLS && f.Cert == nil {
				t.Errorf("%v: no certificate", tt.err)
			}
		})
	}
}

func TestKindGroups(t *testing.T) {
	for k := netfail.Other; k <= netfail.Closed; k++ {
		n := 0
		for _, in := range []bool{k.TLS(), k.DNS(), k.TimedOut()} {
			if in {
				n++
			}
		}
		if n > 1 {
			t.Errorf("kind %d is in %d groups", k, n)
		}
	}
	if !netfail.UnknownAuthority.TLS() || !netfail.TLSAlert.TLS() || netfail.NoSuchHost.TLS() {
		t.Error("TLS group")
	}
	if !netfail.NoSuchHost.DNS() || !netfail.DNSFailed.DNS() || netfail.ProxyFailed.DNS() {
		t.Error("DNS group")
	}
}
