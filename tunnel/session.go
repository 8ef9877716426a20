package tunnel

import (
	"context"
	"net"
)

// Session is one multiplexed tunnel connection between an agent and the
// gateway. Streams are net.Conn values whose deadlines work, so that a
// stalled peer cannot hang a reader forever.
type Session interface {
	// OpenStream opens a new stream to the peer.
	OpenStream(ctx context.Context) (net.Conn, error)
	// AcceptStream waits for the peer to open a stream.
	AcceptStream(ctx context.Context) (net.Conn, error)
	// Close tears the session down and every stream with it.
	Close() error
	// Done is closed once the session has ended, for whatever reason.
	Done() <-chan struct{}
	// Transport names the transport: TransportQUIC or TransportTCP.
	Transport() string
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// halfCloser is implemented by streams that can close their write side
// alone, signalling EOF to the peer while still reading its answer.
type halfCloser interface {
	CloseWrite() error
}

// CloseWrite closes the write side of a stream if it can, and the whole
// stream otherwise.
func CloseWrite(c net.Conn) error {
	if hc, ok := c.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return c.Close()
}
