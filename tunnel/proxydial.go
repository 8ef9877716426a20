package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/oxsecurity/oxbroker/internal/hostport"
)

// ErrProxyAuth is returned when the HTTP proxy refuses the tunnel with 407.
var ErrProxyAuth = errors.New("proxy requires authentication (407): set user:password in gateway.proxy")

// ProxyStep is the part of DialProxy that failed.
type ProxyStep string

// The steps of DialProxy, in order.
const (
	ProxyConnect ProxyStep = "connect"             // the TCP connection to the proxy
	ProxyTLS     ProxyStep = "tls"                 // the TLS handshake with an https:// proxy
	ProxyWrite   ProxyStep = "write CONNECT"       // sending the CONNECT request
	ProxyRead    ProxyStep = "read CONNECT answer" // reading the proxy's answer
	ProxyRefused ProxyStep = "refused"             // the proxy answered, with a status other than 200
)

// ProxyError is a failure of DialProxy: the step that failed, and for a
// refusal the proxy's status. It holds no password: Proxy is redacted.
type ProxyError struct {
	Proxy     string // the proxy's URL, its password redacted
	ProxyAddr string // the host:port dialled for the proxy
	Addr      string // the address the tunnel was asked for
	Step      ProxyStep
	// Credentials is true when the CONNECT carried Basic credentials
	// (the proxy URL has user information): a 407 then refused them.
	Credentials bool
	// StatusCode and Status are the proxy's answer to CONNECT when Step is
	// ProxyRefused ("407 Proxy Authentication Required"); 0 and "" else.
	StatusCode int
	Status     string
	// Err is the cause of a failed step; nil for ProxyRefused.
	Err error
}

func (e *ProxyError) Error() string {
	switch e.Step {
	case ProxyConnect:
		return fmt.Sprintf("proxy %s: %v", e.Proxy, e.Err)
	case ProxyRefused:
		if e.AuthRequired() {
			return fmt.Sprintf("proxy %s: %v", e.Proxy, ErrProxyAuth)
		}
		return fmt.Sprintf("proxy %s: CONNECT %s: %s", e.Proxy, e.Addr, e.Status)
	}
	return fmt.Sprintf("proxy %s: %s: %v", e.Proxy, e.Step, e.Err)
}

// Unwrap returns the cause of a failed step, and ErrProxyAuth for a 407.
func (e *ProxyError) Unwrap() error {
	if e.Err == nil && e.AuthRequired() {
		return ErrProxyAuth
	}
	return e.Err
}

// AuthRequired reports whether the proxy asked for credentials, or refused
// the ones sent (407).
func (e *ProxyError) AuthRequired() bool {
	return e.Step == ProxyRefused && e.StatusCode == http.StatusProxyAuthRequired
}

// DialProxy opens a TCP tunnel to addr through an HTTP CONNECT proxy
// (http:// or https://), with Basic proxy authentication when the proxy
// URL carries user information. It is how the agent reaches the gateway
// through a proxy, and how `oxbroker check` tests that way. Its failures
// are *ProxyError, except ctx's own error when ctx ends just as the
// proxy's 200 arrives.
func DialProxy(ctx context.Context, proxy *url.URL, addr string) (net.Conn, error) {
	fail := func(step ProxyStep, err error) *ProxyError {
		return &ProxyError{Proxy: proxy.Redacted(), ProxyAddr: hostport.Of(proxy), Addr: addr, Step: step,
			Credentials: proxy.User != nil, Err: err}
	}
	d := net.Dialer{KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", hostport.Of(proxy))
	if err != nil {
		return nil, fail(ProxyConnect, err)
	}
	if proxy.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fail(ProxyTLS, err)
		}
		conn = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Unblock the exchange below if ctx is cancelled without a deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pass))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fail(ProxyWrite, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fail(ProxyRead, err)
	}
	// The body of a 200 answer to CONNECT is the tunnel itself: do not
	// read or close it.
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		e := fail(ProxyRefused, nil)
		e.StatusCode, e.Status = resp.StatusCode, resp.Status
		return nil, e
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// The proxy sent tunnel bytes with its answer; keep them.
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
