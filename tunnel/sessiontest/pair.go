package sessiontest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// SessionPair returns two connected sessions on loopback over transport:
// the side that dialled (an agent's) and the side that accepted (a
// gateway's), both closed when the test ends. No hello is exchanged.
func SessionPair(t testing.TB, transport string, opts tunnel.Options) (dialled, accepted tunnel.Session) {
	t.Helper()
	server, client := tlsConfigs(t)
	l, err := tunnel.Listen("127.0.0.1:0", server, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &tunnel.Dialer{Transport: transport, TLS: client, Options: opts}
	dialled, err = d.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialled.Close() })
	return dialled, tunneltest.Open(t, l.Accept)
}

// tlsConfigs returns the TLS configurations of a server with a
// certificate for 127.0.0.1 and of a client that trusts it.
func tlsConfigs(t testing.TB) (server, client *tls.Config) {
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
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: ca.Pool()}
}
