package tunnel

import (
	"net"
	"sync/atomic"
	"time"
)

// idleConn puts a deadline of idle on every Read and Write for which its
// user has not set one. HTTP servers set their own deadlines; HTTP clients
// (the gateway's transport) do not, and without this a peer that stops
// answering would hold the reader until the whole session died.
type idleConn struct {
	net.Conn
	idle      time.Duration
	userRead  atomic.Bool // a read deadline was set by the user
	userWrite atomic.Bool // a write deadline was set by the user
}

func withIdleTimeout(c net.Conn, idle time.Duration) net.Conn {
	return &idleConn{Conn: c, idle: idle}
}

func (c *idleConn) Read(p []byte) (int, error) {
	if !c.userRead.Load() {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if !c.userWrite.Load() {
		c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Write(p)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.userRead.Store(!t.IsZero())
	c.userWrite.Store(!t.IsZero())
	return c.Conn.SetDeadline(t)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.userRead.Store(!t.IsZero())
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetWriteDeadline(t time.Time) error {
	c.userWrite.Store(!t.IsZero())
	return c.Conn.SetWriteDeadline(t)
}

func (c *idleConn) CloseWrite() error { return CloseWrite(c.Conn) }
