// Package rawhttp sends hand-written HTTP/1.1 requests and reads the
// answers as a client that then sends nothing more: for tests of what a
// server does with requests no client library would send (a declared body
// that never comes, odd header spellings), over TCP or a tunnel stream.
package rawhttp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Conn is a connection that requests are written to as they are.
type Conn struct {
	net.Conn
	br *bufio.Reader
}

// New takes c over; every read and write on it must be done by the
// deadline, which bounds a test that fails by waiting.
func New(c net.Conn, deadline time.Time) *Conn {
	c.SetDeadline(deadline)
	return &Conn{Conn: c, br: bufio.NewReader(c)}
}

// Dial connects to addr over TCP: see New.
func Dial(addr string, deadline time.Time) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return nil, err
	}
	return New(c, deadline), nil
}

// Do sends raw on a new TCP connection to addr, reads the answer as Send
// does and closes the connection: for a request whose connection the test
// has no further use for.
func Do(addr, raw string, deadline time.Time) (*http.Response, []byte, error) {
	c, err := Dial(addr, deadline)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	resp, body, _, err := c.Send(raw)
	return resp, body, err
}

// Send writes raw, which may stop before a body it declares, and reads the
// final answer and its body. Informational answers (1xx) before it are
// returned in interim. A HEAD request's answer is read without a body.
func (c *Conn) Send(raw string) (resp *http.Response, body []byte, interim []int, err error) {
	if _, err := io.WriteString(c.Conn, raw); err != nil {
		return nil, nil, nil, err
	}
	var req *http.Request
	if len(raw) >= 5 && raw[:5] == "HEAD " {
		req = &http.Request{Method: http.MethodHead}
	}
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return nil, nil, interim, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		interim = append(interim, resp.StatusCode)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp, body, interim, err
}

// Closed reports whether the server closed the connection after what was
// read: it waits for that until the deadline. It returns an error when
// the server sent more bytes or kept the connection open.
func (c *Conn) Closed() error {
	_, err := c.br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		return errors.New("the server sent more after its answer")
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("the server kept the connection open after its answer")
	}
	return nil
}
