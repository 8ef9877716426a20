package tunnel

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"
)

// muxConn is the connection under a yamux session (TLS over TCP). It does
// three things yamux v0.1.2 does not:
//
//   - It guards yamux from its peer: every frame header read passes a
//     frameGuard, which ends the session when the peer goes over a limit
//     (ping floods, stream floods, frames for streams never opened).
//     yamux trusts its peer with goroutines and memory (muxguard.go).
//   - It joins a data frame's 12-byte header and its body into one write.
//     yamux's send loop writes them separately, which over TLS is two
//     records, two AEAD seals and two syscalls per frame; a small request
//     or response is a handful of frames, so this halves the writes on the
//     request path.
//   - Close lets go of the TLS connection. yamux keeps a stream that was
//     half-closed when its session died reachable until its
//     StreamCloseTimeout timer fires (Stream.forceClose does not stop the
//     timer), and the stream keeps the session and with it this
//     connection; dropping the TLS connection here means such a session
//     holds a few hundred bytes for that time, not the TLS buffers.
//
// Only yamux's send loop writes, so writes need no lock of their own.
type muxConn struct {
	conn atomic.Pointer[net.Conn] // nil once closed

	// A data header waiting for its body.
	pending   [headerSize]byte
	hasHeader bool
	bodyLen   int

	la, ra  net.Addr
	scratch []byte // header + start of body, reused across writes

	guard *frameGuard
}

// The yamux frame header (yamux spec.md): version, type, flags, stream
// id, length.
const (
	headerSize   = 12
	typeData     = 0
	coalesceMax  = 16 << 10 // one TLS record
	muxVersion   = 0
	lengthOffset = 8
)

func newMuxConn(c net.Conn, lim guardLimits) *muxConn {
	m := &muxConn{la: c.LocalAddr(), ra: c.RemoteAddr(), guard: newFrameGuard(lim)}
	m.conn.Store(&c)
	return m
}

func (m *muxConn) inner() (net.Conn, error) {
	if p := m.conn.Load(); p != nil {
		return *p, nil
	}
	return nil, net.ErrClosed
}

// Read hands yamux the peer's bytes once the guard has seen them; bytes
// that go over a limit are not handed over, and the error ends yamux's
// receive loop, which closes the session.
func (m *muxConn) Read(b []byte) (int, error) {
	c, err := m.inner()
	if err != nil {
		return 0, err
	}
	n, err := c.Read(b)
	if gerr := m.guard.scan(b[:n]); gerr != nil {
		return 0, gerr
	}
	return n, err
}

func (m *muxConn) Write(b []byte) (int, error) {
	c, err := m.inner()
	if err != nil {
		return 0, err
	}
	if m.hasHeader {
		m.hasHeader = false
		if len(b) == m.bodyLen {
			return m.writeJoined(c, b)
		}
		// Not the body that was announced (yamux dropped it): send the
		// header alone, as yamux would have.
		if _, err := c.Write(m.pending[:]); err != nil {
			return 0, err
		}
	}
	if len(b) == headerSize {
		m.guard.sent(b)
	}
	if len(b) == headerSize && b[0] == muxVersion && b[1] == typeData {
		if n := int(binary.BigEndian.Uint32(b[lengthOffset:])); n > 0 {
			copy(m.pending[:], b)
			m.hasHeader, m.bodyLen = true, n
			return len(b), nil
		}
	}
	return c.Write(b)
}

// writeJoined writes the pending header with body in one write, or with
// the body's first record's worth when the body is large.
func (m *muxConn) writeJoined(c net.Conn, body []byte) (int, error) {
	k := min(len(body), coalesceMax-headerSize)
	m.scratch = append(append(m.scratch[:0], m.pending[:]...), body[:k]...)
	if _, err := c.Write(m.scratch); err != nil {
		return 0, err
	}
	if cap(m.scratch) > 2*coalesceMax {
		m.scratch = nil
	}
	if k == len(body) {
		return len(body), nil
	}
	n, err := c.Write(body[k:])
	return k + n, err
}

func (m *muxConn) Close() error {
	p := m.conn.Swap(nil)
	if p == nil {
		return nil
	}
	return (*p).Close()
}

func (m *muxConn) LocalAddr() net.Addr  { return m.la }
func (m *muxConn) RemoteAddr() net.Addr { return m.ra }

func (m *muxConn) SetDeadline(t time.Time) error {
	c, err := m.inner()
	if err != nil {
		return err
	}
	return c.SetDeadline(t)
}

func (m *muxConn) SetReadDeadline(t time.Time) error {
	c, err := m.inner()
	if err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (m *muxConn) SetWriteDeadline(t time.Time) error {
	c, err := m.inner()
	if err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
