package tunnel

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// proxied is a tunnel listener with a CONNECT proxy beside it that
// wants user "agent", password "s3cret"; ctx bounds the test's dials.
func proxied(t *testing.T) (p pki, l *Listener, proxy *tunneltest.ConnectProxy, ctx context.Context) {
	t.Helper()
	p = newPKI(t)
	l = listen(t, p, Options{})
	proxy = tunneltest.StartConnectProxy(t, "agent", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return p, l, proxy, ctx
}

func TestDialThroughConnectProxy(t *testing.T) {
	p, l, proxy, ctx := proxied(t)

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
	srv := tunneltest.Open(t, l.Accept)
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
	p, l, proxy, ctx := proxied(t)
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

// TestDialProxyError: every way DialProxy fails is a *ProxyError that says
// which step failed and, for a refusal, the proxy's own status; a 407 is
// ErrProxyAuth too, and no error shows the proxy's password.
func TestDialProxyError(t *testing.T) {
	_, l, proxy, ctx := proxied(t)
	target := l.Addr().String()
	denied := tunneltest.ClosedAddr(t)
	proxy.Deny(denied)
	gone := tunneltest.StartConnectProxy(t, "agent", "s3cret")
	goneURL := gone.URL("agent", "s3cret")
	gone.Close()

	for _, tt := range []struct {
		name   string
		proxy  *url.URL
		addr   string
		step   ProxyStep
		status int
		auth   bool
	}{
		{"no credentials", proxy.URL("", ""), target, ProxyRefused, http.StatusProxyAuthRequired, true},
		{"wrong password", proxy.URL("agent", "wrong"), target, ProxyRefused, http.StatusProxyAuthRequired, true},
		{"destination denied", proxy.URL("agent", "s3cret"), denied, ProxyRefused, http.StatusForbidden, false},
		{"destination down", proxy.URL("agent", "s3cret"), tunneltest.ClosedAddr(t), ProxyRefused, http.StatusBadGateway, false},
		{"proxy down", goneURL, target, ProxyConnect, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := DialProxy(ctx, tt.proxy, tt.addr)
			if err == nil {
				conn.Close()
				t.Fatal("DialProxy succeeded")
			}
			var pe *ProxyError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want a *ProxyError", err, err)
			}
			if pe.Step != tt.step || pe.StatusCode != tt.status || pe.AuthRequired() != tt.auth {
				t.Errorf("got step %q, status %d, auth %v; want %q, %d, %v", pe.Step, pe.StatusCode, pe.AuthRequired(), tt.step, tt.status, tt.auth)
			}
			if tt.status != 0 && !strings.HasPrefix(pe.Status, strconv.Itoa(tt.status)+" ") {
				t.Errorf("status text: got %q, want the proxy's %d", pe.Status, tt.status)
			}
			if got := errors.Is(err, ErrProxyAuth); got != tt.auth {
				t.Errorf("errors.Is(err, ErrProxyAuth): got %v, want %v", got, tt.auth)
			}
			if pe.Addr != tt.addr || pe.ProxyAddr != tt.proxy.Host {
				t.Errorf("addresses: got %s via %s, want %s via %s", pe.Addr, pe.ProxyAddr, tt.addr, tt.proxy.Host)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") {
				t.Errorf("the error shows the proxy's password: %v", err)
			}
		})
	}
}
