package tunnel

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connectProxy is a real HTTP CONNECT proxy on loopback with Basic auth,
// built on net/http, recording the targets it tunnelled to.
type connectProxy struct {
	srv     *http.Server
	ln      net.Listener
	user    string
	pass    string
	tunnels atomic.Int32
	wg      sync.WaitGroup
}

func newConnectProxy(t testing.TB, user, pass string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, user: user, pass: pass}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.srv.Close()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) URL(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	if r.Header.Get("Proxy-Authorization") != want {
		w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	p.tunnels.Add(1)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
	go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
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
	if got := proxy.tunnels.Load(); got != 1 {
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
		if u.User != nil && containsPassword(err.Error(), "wrong") {
			t.Fatalf("error shows the proxy password: %v", err)
		}
	}
}

func containsPassword(s, pw string) bool {
	for i := 0; i+len(pw) <= len(s); i++ {
		if s[i:i+len(pw)] == pw {
			return true
		}
	}
	return false
}
