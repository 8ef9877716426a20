package streamhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// Client sends HTTP/1.1 requests over the streams of one session. A GET or
// HEAD without a body, most of what a Jira client sends, takes the short
// way: the caller's goroutine writes the request onto a stream with
// net/http's own Request.Write and reads the answer with http.ReadResponse,
// on a stream kept for the next call once the answer has been read to the
// end. Everything else (a body to send, other methods) goes through an
// http.Transport over the same session, whose two goroutines per
// connection let the answer come while the body is still being sent.
//
// Both ways write and parse HTTP with net/http's code; the short way only
// leaves out the Transport's goroutine hand-offs, which cost more than the
// rest of a small call's forwarding.
type Client struct {
	sess tunnel.Session
	full *http.Transport

	mu   sync.Mutex // guards idle
	idle []*clientConn
}

var _ http.RoundTripper = (*Client)(nil)

// clientConn is a stream with its buffers, idle between calls.
type clientConn struct {
	st    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // idle since
}

// max1xx is how many informational answers may precede one answer, as
// http.Transport takes.
const max1xx = 5

// Idle streams are kept up to maxIdle, for at most idleFor: the agent's
// stream server closes a stream idle for 2 minutes (server.go).
const (
	maxIdle = 256
	idleFor = time.Minute
)

// NewClient returns the client of session s.
func NewClient(s tunnel.Session) *Client {
	return &Client{sess: s, full: NewTransport(s)}
}

// RoundTrip sends req and returns the answer; see Client.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !short(req) {
		return c.full.RoundTrip(req)
	}
	for {
		cc, reused, err := c.conn(req.Context())
		if err != nil {
			return nil, err
		}
		resp, started, err := c.exchange(cc, req)
		if err == nil {
			return resp, nil
		}
		cc.st.Close()
		// A stream kept idle may have been closed by the agent just
		// before the call: if nothing of the answer came, send the
		// (idempotent, bodiless) request again on a new stream.
		if !reused || started || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// short reports whether req takes the short way: a GET or HEAD without a
// body, which may be sent again if a kept stream turns out to be closed.
func short(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		len(req.TransferEncoding) == 0
}

// conn returns an idle stream, or a new one.
func (c *Client) conn(ctx context.Context) (cc *clientConn, reused bool, err error) {
	c.mu.Lock()
	for len(c.idle) > 0 {
		cc = c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if time.Since(cc.since) < idleFor {
			c.mu.Unlock()
			return cc, true, nil
		}
		cc.st.Close()
	}
	c.mu.Unlock()
	st, err := c.sess.OpenStream(ctx)
	if err != nil {
		return nil, false, err
	}
	return &clientConn{st: st, br: bufio.NewReaderSize(st, 32<<10), bw: bufio.NewWriterSize(st, 4<<10)}, false, nil
}

// put keeps cc for the next call, or closes it.
func (c *Client) put(cc *clientConn) {
	cc.since = time.Now()
	c.mu.Lock()
	if len(c.idle) < maxIdle {
		c.idle = append(c.idle, cc)
		cc = nil
	}
	c.mu.Unlock()
	if cc != nil {
		cc.st.Close()
	}
}

// exchange writes req on cc and reads its answer. started reports whether
// any of the answer was read: a failure before it may be retried.
func (c *Client) exchange(cc *clientConn, req *http.Request) (resp *http.Response, started bool, err error) {
	// The call's context ends reads and writes on the stream at once.
	stop := context.AfterFunc(req.Context(), func() { cc.st.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(cc.bw); err != nil {
		stop()
		return nil, false, err
	}
	if err := cc.bw.Flush(); err != nil {
		stop()
		return nil, false, err
	}
	trace := httptrace.ContextClientTrace(req.Context())
	for informational := 0; ; informational++ {
		if _, err := cc.br.Peek(1); err != nil {
			stop()
			return nil, false, ctxErr(req.Context(), err)
		}
		resp, err = http.ReadResponse(cc.br, req)
		if err != nil {
			stop()
			return nil, true, ctxErr(req.Context(), err)
		}
		// 1xx answers precede the real one; ReverseProxy passes them on
		// through the trace, as http.Transport does, and like it this
		// takes at most max1xx of them. 101 is final.
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if informational == max1xx {
			stop()
			return nil, true, errors.New("too many 1xx informational responses")
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				stop()
				return nil, true, err
			}
		}
	}
	resp.Body = &clientBody{rc: resp.Body, cc: cc, c: c, stop: stop,
		keep: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	return resp, true, nil
}

// ctxErr prefers the call's own end to the deadline it put on the stream.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// clientBody is the body of an answer on the short way: read to the end,
// it gives its stream back for the next call; closed before, it closes
// the stream, whose unread rest cannot be told from the next answer.
type clientBody struct {
	rc   io.ReadCloser
	cc   *clientConn
	c    *Client
	stop func() bool
	keep bool

	mu   sync.Mutex // guards done
	eof  bool
	done bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil
	}
	b.done = true
	eof := b.eof
	b.mu.Unlock()
	err := b.rc.Close()
	// The deadline set off by the call's end is lifted for the next call;
	// if it fired already, the stream is not kept.
	fired := !b.stop()
	if eof && b.keep && !fired {
		b.cc.st.SetDeadline(time.Time{})
		b.c.put(b.cc)
	} else {
		b.cc.st.Close()
	}
	return err
}

// CloseIdleConnections closes the idle streams of both ways.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cc := range idle {
		cc.st.Close()
	}
	c.full.CloseIdleConnections()
}
