package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/hashicorp/yamux"
)

// yamuxSession is a Session over TLS over TCP, multiplexed by yamux.
type yamuxSession struct {
	mux   *yamux.Session
	conn  net.Conn
	opts  Options
	pings *pingClock // the keepalives' round trips (rtt.go)
}

var _ Session = (*yamuxSession)(nil)

// yamuxConfig tunes yamux for the tunnel: keepalives detect a dead peer
// within KeepAlive+IdleTimeout, the stream window is raised from 256 KiB
// so bulk transfers are not window-bound, and the accept backlog bounds how
// many streams a peer can queue before new ones are refused.
//
// The backlog is 1,024 on the agent, whatever MaxIncomingStreams says:
// yamux also uses it as the opener's limit on streams not yet acknowledged.
// The gateway's is 64: agents open only the control stream there, yamux
// allocates the backlog channel up front (8 KiB of every idle session),
// and 64 bounds only how many of the gateway's new streams may wait for
// the agent's acknowledgement at once (a larger burst waits a round trip). StreamOpenTimeout is off:
// yamux would close the whole session when one opened stream waits for
// accept longer than that, which is what an agent at its concurrency limit
// makes streams do; keepalives already detect a dead peer.
//
// StreamCloseTimeout bounds how long a stream we closed waits for the
// peer's FIN before it is reset; yamux also keeps a stream that was
// half-closed when its session died until then (see muxConn), so it is
// short.
func yamuxConfig(o Options, client bool) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = o.KeepAlive
	c.ConnectionWriteTimeout = o.IdleTimeout
	c.MaxStreamWindowSize = o.StreamWindow
	c.AcceptBacklog = 1024
	if !client {
		c.AcceptBacklog = 64
	}
	c.StreamOpenTimeout = 0
	c.StreamCloseTimeout = streamCloseTimeout
	c.LogOutput = io.Discard
	return c
}

const streamCloseTimeout = 10 * time.Second

func newYamux(conn net.Conn, client bool, o Options) (*yamuxSession, error) {
	var (
		mux *yamux.Session
		err error
	)
	mc := newMuxConn(conn, yamuxGuardLimits(o, client, conn.RemoteAddr()))
	if client {
		mux, err = yamux.Client(mc, yamuxConfig(o, client))
	} else {
		mux, err = yamux.Server(mc, yamuxConfig(o, client))
	}
	if err != nil {
		return nil, err
	}
	mc.guard.mux.Store(mux)
	return &yamuxSession{mux: mux, conn: conn, opts: o, pings: mc.guard.pings}, nil
}

func dialTCP(ctx context.Context, addr string, tlsConf *tls.Config, proxy *url.URL, o Options) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, o.HandshakeTimeout)
	defer cancel()
	var (
		raw net.Conn
		err error
	)
	if proxy != nil {
		raw, err = DialProxy(ctx, proxy, addr)
	} else {
		d := net.Dialer{KeepAlive: 15 * time.Second}
		raw, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("tcp dial %s: %w", addr, err)
	}
	tc := tls.Client(raw, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != ALPN {
		tc.Close()
		return nil, fmt.Errorf("tls handshake with %s: peer speaks %q, not %q", addr, p, ALPN)
	}
	s, err := newYamux(tc, true, o)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("yamux client: %w", err)
	}
	return s, nil
}

func (s *yamuxSession) OpenStream(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// yamux's OpenStream takes no context and blocks while the peer has
	// 1,024 streams not yet accepted. Wait for it here instead, so ctx
	// bounds the wait; a stream that opens after ctx ended is closed by
	// the goroutine, which ends with the open or with the session.
	type result struct {
		st  *yamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := s.mux.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return withIdleTimeout(r.st, s.opts.StreamIdleTimeout), nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.err == nil {
				r.st.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (s *yamuxSession) AcceptStream(ctx context.Context) (net.Conn, error) {
	st, err := s.mux.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return withIdleTimeout(st, s.opts.StreamIdleTimeout), nil
}

func (s *yamuxSession) Close() error          { return s.mux.Close() }
func (s *yamuxSession) Done() <-chan struct{} { return s.mux.CloseChan() }
func (s *yamuxSession) Transport() string     { return TransportTCP }
func (s *yamuxSession) LocalAddr() net.Addr   { return s.conn.LocalAddr() }
func (s *yamuxSession) RemoteAddr() net.Addr  { return s.conn.RemoteAddr() }
