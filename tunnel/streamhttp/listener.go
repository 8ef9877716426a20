package streamhttp

import (
	"context"
	"net"
	"sync"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// streamListener turns the streams the peer opens on a session into
// connections for an http.Server, at most limit of them at once: Accept
// waits for a slot, so excess streams queue in the transport (QUIC stream
// credit, yamux backlog) instead of in the server's memory.
type streamListener struct {
	s     tunnel.Session
	slots chan struct{}
	ctx   context.Context
	stop  context.CancelFunc
}

// Listener returns the streams the peer opens on s as a net.Listener for
// an http.Server, at most limit of them served at once. Close stops Accept;
// the session itself is closed by its owner.
func Listener(s tunnel.Session, limit int) net.Listener { return newStreamListener(s, limit) }

func newStreamListener(s tunnel.Session, limit int) *streamListener {
	ctx, stop := context.WithCancel(context.Background())
	return &streamListener{s: s, slots: make(chan struct{}, limit), ctx: ctx, stop: stop}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	case <-l.s.Done():
		return nil, net.ErrClosed
	}
	c, err := l.s.AcceptStream(l.ctx)
	if err != nil {
		<-l.slots
		return nil, net.ErrClosed
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close stops Accept; the session itself is closed by its owner.
func (l *streamListener) Close() error {
	l.stop()
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.s.LocalAddr() }

// slotConn gives its listener slot back when closed.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
