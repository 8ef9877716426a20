package tunnel

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/devcert"
)

// TestDialNameChecksTheName: DialName connects to an IP address and
// checks the certificate against the name it was given, not the IP;
// TLS.ServerName still overrides both.
func TestDialNameChecksTheName(t *testing.T) {
	ca, err := devcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("gateway.test") // no IP address in it
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	tests := []struct {
		name, serverName, override string
		ok                         bool
	}{
		{"the certificate's name", "gateway.test", "", true},
		{"another name", "other.test", "", false},
		{"no name: the IP address", "", "", false},
		{"server_name overrides the name", "other.test", "gateway.test", true},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				d := &Dialer{Transport: tr, TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: tt.override}}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s, err := d.DialName(ctx, addr, tt.serverName)
				if err == nil {
					s.Close()
					if srv, err := l.Accept(ctx); err == nil {
						srv.Close()
					}
				}
				if got := err == nil; got != tt.ok {
					t.Errorf("DialName(%s, %q) with server_name %q: got err %v, want success %v", addr, tt.serverName, tt.override, err, tt.ok)
				}
			})
		}
	}
}

// TestAutoDoesNotRememberADownGateway: when neither QUIC nor TCP reaches
// the address, the gateway there is down rather than UDP blocked, and
// the next dial tries QUIC first again.
func TestAutoDoesNotRememberADownGateway(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := tl.Addr().String()
	tl.Close() // nothing listens on TCP or UDP there
	d := &Dialer{Transport: DialAuto, TLS: newPKI(t).client, QUICTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := d.Dial(ctx, addr); err == nil {
		s.Close()
		t.Fatal("dial to a closed port succeeded")
	}
	if d.quicRecentlyFailed() {
		t.Error("after a dial that failed on both transports: the dialer remembers a QUIC failure, want none")
	}
}
