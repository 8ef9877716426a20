package sessiontest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// SessionPair returns two connected sessions on loopback over transport:
// the side that dialled (an agent's) and the side that accepted (a
// gateway's), both closed when the test ends. No hello is exchanged.
func SessionPair(t testing.TB, transport string, opts tunnel.Options) (dialled, accepted tunnel.Session) {
	t.Helper()
	ca, err := devcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	l, err := tunnel.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &tunnel.Dialer{Transport: transport, TLS: &tls.Config{RootCAs: ca.Pool()}, Options: opts}
	dialled, err = d.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialled.Close() })
	accepted, err = l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialled, accepted
}
