package tunnel

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

func newConnectProxy(t testing.TB, user, pass string) *tunneltest.ConnectProxy {
	t.Helper()
	p, err := tunneltest.NewConnectProxy(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestDialThroughConnectProxy(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	proxy := newConnectProxy(t, "agent", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A proxy forces TCP even when QUIC was asked for.
	d := &Dialer{Transport: DialQUIC, TLS: p.client, Proxy: proxy.URL("agent", "s3cret")}
	s, err := d.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Transport(); got != TransportTCP {
		t.Fatalf("transport: got %s, want tcp", got)
	}
	srv, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if got := proxy.Tunnels.Load(); got != 1 {
		t.Fatalf("proxy tunnels: got %d, want 1", got)
	}
	// The session works end to end through the proxy.
	done := make(chan error, 1)
	go func() {
		st, err := s.AcceptStream(ctx)
		if err == nil {
			io.Copy(st, st)
			st.Close()
		}
		done <- err
	}()
	if err := echo(ctx, srv, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDialThroughConnectProxyWrongPassword(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	proxy := newConnectProxy(t, "agent", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []*url.URL{proxy.URL("agent", "wrong"), proxy.URL("", "")} {
		d := &Dialer{Transport: DialTCP, TLS: p.client, Proxy: u}
		s, err := d.Dial(ctx, l.Addr().String())
		if err == nil {
			s.Close()
			t.Fatalf("dial through %s succeeded with bad proxy credentials", u.Redacted())
		}
		if !errors.Is(err, ErrProxyAuth) {
			t.Fatalf("got %v, want ErrProxyAuth", err)
		}
		if u.User != nil && strings.Contains(err.Error(), "wrong") {
			t.Fatalf("error shows the proxy password: %v", err)
		}
	}
}
