// Package tunneltest provides test doubles around the tunnel: a real
// HTTP CONNECT proxy with Basic authentication, built on net/http, a
// fault relay, real dial and handshake failures, yamux frame headers
// written by hand for tests that play a rogue peer, and Open for a stream
// or session a test cannot go on without. It does not import the tunnel
// package, so that the tunnel's own tests can use it.
package tunneltest

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ConnectProxy is an HTTP CONNECT proxy on loopback that requires Basic
// proxy authentication and counts the tunnels it opened.
type ConnectProxy struct {
	srv  *http.Server
	ln   net.Listener
	user string
	pass string
	// Tunnels counts CONNECTs that were authenticated and connected.
	Tunnels atomic.Int32
	// Refused counts CONNECTs refused with 407.
	Refused atomic.Int32

	mu     sync.Mutex // guards conns and denied
	conns  map[net.Conn]struct{}
	denied map[string]bool
	wg     sync.WaitGroup // copy goroutines
}

// StartConnectProxy is NewConnectProxy for a test: it fails t when the
// proxy cannot start, and closes the proxy when the test ends.
func StartConnectProxy(t testing.TB, user, pass string) *ConnectProxy {
	t.Helper()
	p, err := NewConnectProxy(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewConnectProxy starts a proxy on 127.0.0.1 accepting user:pass.
func NewConnectProxy(user, pass string) (*ConnectProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &ConnectProxy{ln: ln, user: user, pass: pass, conns: make(map[net.Conn]struct{}), denied: make(map[string]bool)}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// Close stops the proxy and every tunnel through it.
func (p *ConnectProxy) Close() {
	p.srv.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *ConnectProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// Deny makes the proxy refuse authenticated CONNECTs to addr (host:port)
// with 403 Forbidden, as a proxy whose policy forbids that destination.
func (p *ConnectProxy) Deny(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.denied[addr] = true
}

func (p *ConnectProxy) isDenied(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.denied[addr]
}

// URL returns the proxy's URL carrying user and pass (none if user is "").
func (p *ConnectProxy) URL(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func (p *ConnectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	if r.Header.Get("Proxy-Authorization") != want {
		p.Refused.Add(1)
		w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
		return
	}
	if p.isDenied(r.Host) {
		http.Error(w, "CONNECT to "+r.Host+" is not allowed", http.StatusForbidden)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	// The server may already have read the first bytes the client sent
	// after CONNECT (its TLS hello); they are in brw, not in c.
	var fromClient io.Reader = c
	if n := brw.Reader.Buffered(); n > 0 {
		fromClient = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), c)
	}
	p.Tunnels.Add(1)
	p.track(c, up)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(up, fromClient); up.(*net.TCPConn).CloseWrite() }()
	go func() { defer p.wg.Done(); io.Copy(c, up); c.Close(); up.Close() }()
}
