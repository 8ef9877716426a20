package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var transports = []string{DialQUIC, DialTCP}

type pki struct {
	server *tls.Config
	client *tls.Config
}

func newPKI(t testing.TB) pki {
	t.Helper()
	ca, err := devcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return pki{
		server: &tls.Config{Certificates: []tls.Certificate{cert}},
		client: &tls.Config{RootCAs: ca.Pool()},
	}
}

func listen(t testing.TB, p pki, opts Options) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", p.server, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pair returns a connected agent (client) and gateway (server) session.
func pair(t testing.TB, transport string, opts Options) (client, server Session) {
	t.Helper()
	p := newPKI(t)
	l := listen(t, p, opts)
	d := &Dialer{Transport: transport, TLS: p.client, Options: opts}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := d.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = tunneltest.Open(t, l.Accept)
	if got := client.Transport(); got != transport {
		t.Fatalf("client transport: got %s, want %s", got, transport)
	}
	if got := server.Transport(); got != transport {
		t.Fatalf("server transport: got %s, want %s", got, transport)
	}
	return client, server
}

// handshake runs hello/welcome over a fresh pair.
func handshake(t testing.TB, transport string, opts Options) (client, server Session, cc, sc *Control) {
	t.Helper()
	client, server = pair(t, transport, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *Control
		h   Hello
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, h, err := ServerHandshake(ctx, server)
		if err == nil {
			err = c.Send(Welcome{SessionID: "s1", GatewayVersion: "test"})
		}
		ch <- res{c, h, err}
	}()
	cc, w, err := ClientHandshake(ctx, client, Hello{BrokerID: "acme", Token: "broker-secret", AgentID: "a1",
		Sites: []SiteInfo{{Name: "jira", Type: "jira", URL: "https://jira.example", AuthType: "bearer"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if w.SessionID != "s1" {
		t.Fatalf("welcome session id: got %q, want s1", w.SessionID)
	}
	if r.h.BrokerID != "acme" || r.h.Token != "broker-secret" || r.h.Protocol != ProtocolVersion || len(r.h.Sites) != 1 {
		t.Fatalf("hello: got %+v", r.h)
	}
	return client, server, cc, r.c
}

// TestStreams has the gateway open many concurrent streams that the agent
// echoes, and checks every byte comes back, on both transports.
func TestStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server, cc, sc := handshake(t, tr, Options{})
			defer cc.Close()
			defer sc.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var echoes sync.WaitGroup
			echoes.Add(1)
			go func() { // the agent echoes every stream the gateway opens
				defer echoes.Done()
				var wg sync.WaitGroup
				defer wg.Wait()
				for {
					st, err := client.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer st.Close()
						io.Copy(st, st)
						CloseWrite(st)
					}()
				}
			}()

			const streams = 40
			const size = 256 << 10
			var wg sync.WaitGroup
			errs := make(chan error, streams)
			for range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- echo(ctx, server, size)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			cancel()
			echoes.Wait()
		})
	}
}

func echo(ctx context.Context, s Session, size int) error {
	st, err := s.OpenStream(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	want := make([]byte, size)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(want)
		if err == nil {
			err = CloseWrite(st)
		}
		werr <- err
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("echoed bytes differ")
	}
	return nil
}

func TestReject(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server := pair(t, tr, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, _, err := ServerHandshake(ctx, server)
				if err != nil {
					t.Error(err)
					return
				}
				c.Send(Reject{Code: RejectUnauthorized, Message: "unknown broker or wrong token"})
				CloseWrite(c.conn)
			}()
			_, _, err := ClientHandshake(ctx, client, Hello{BrokerID: "acme", Token: "wrong"})
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a RejectError", err)
			}
			if re.Reject.Code != RejectUnauthorized {
				t.Fatalf("reject code: got %q, want %q", re.Reject.Code, RejectUnauthorized)
			}
			<-done
		})
	}
}

// TestPeerCloseEndsSession checks that closing one side ends the other
// side's session promptly, which is what takes a dead agent out of the
// gateway's registry.
func TestPeerCloseEndsSession(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server, cc, sc := handshake(t, tr, Options{})
			defer sc.Close()
			cc.Close()
			client.Close()
			testwait.Recv(t, 5*time.Second, "the server session to end after the client closed", server.Done())
		})
	}
}

// TestStalledPeerCannotHangReader is the regression test for yamux
// GHSA-29qp-crvh-w22m: a stream read with no deadline set by its user
// still ends when the peer sends nothing.
func TestStalledPeerCannotHangReader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server, cc, sc := handshake(t, tr, Options{StreamIdleTimeout: 300 * time.Millisecond})
			defer cc.Close()
			defer sc.Close()
			st := tunneltest.Open(t, server.OpenStream)
			st.Write([]byte("x")) // make the stream known to the peer; the peer never answers
			errc := make(chan error, 1)
			go func() {
				_, err := st.Read(make([]byte, 1))
				errc <- err
			}()
			var ne net.Error
			if err := testwait.Recv(t, 4*time.Second, "the read on a stalled stream to time out", errc); !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("read: got %v, want a timeout", err)
			}
			_ = client
		})
	}
}

func TestUntrustedGatewayRefused(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t) // a CA the agent does not trust
	l := listen(t, p, Options{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			d := &Dialer{Transport: tr, TLS: other.client}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := d.Dial(ctx, l.Addr().String())
			if err == nil {
				s.Close()
				t.Fatal("dial succeeded against a certificate from an untrusted CA")
			}
		})
	}
}

func TestWrongALPNRefused(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	c := p.client.Clone()
	c.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", l.Addr().String(), c)
	if err == nil {
		defer conn.Close()
		// The server may complete TLS and then drop us; either way no session.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("a client speaking h2 got data from the tunnel port")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if s, err := l.Accept(ctx); err == nil {
		s.Close()
		t.Fatal("listener delivered a session for a client with the wrong ALPN")
	}
}

// TestAutoFallsBackToTCP blocks UDP and checks that auto mode ends up on
// TCP, and goes straight to TCP on the next dial.
func TestAutoFallsBackToTCP(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	l.ql.Close()
	l.udp.Close() // UDP is "blocked": nothing answers QUIC
	d := &Dialer{Transport: DialAuto, TLS: p.client, QUICTimeout: 500 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		s, err := d.Dial(ctx, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Transport(); got != TransportTCP {
			t.Fatalf("dial %d: transport %s, want tcp", i, got)
		}
		srv, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		srv.Close()
		if i == 0 && !d.quicRecentlyFailed() {
			t.Fatal("auto dialer did not remember the QUIC failure")
		}
	}
}

func TestAutoPrefersQUIC(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	d := &Dialer{Transport: DialAuto, TLS: p.client}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tunneltest.Open(t, l.Accept)
	if got := s.Transport(); got != TransportQUIC {
		t.Fatalf("transport: got %s, want quic", got)
	}
}
