package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"
)

// quicSession is a Session over one QUIC connection. QUIC multiplexes
// natively; each stream is a bidirectional QUIC stream.
type quicSession struct {
	conn *quic.Conn
	opts Options
}

var _ Session = (*quicSession)(nil)

// quicConfig returns the quic-go configuration for opts. Receive windows
// are large so that one bulk download can fill a fast link; quic-go only
// grows a window up to its maximum when the transfer needs it.
//
// Everything the tunnel does not use is off, so that a peer cannot use it
// to hold memory: unidirectional streams, datagrams (a DATAGRAM frame is
// then a protocol violation that closes the connection) and 0-RTT.
func quicConfig(o Options) *quic.Config {
	return &quic.Config{
		EnableDatagrams:                false,
		Allow0RTT:                      false,
		HandshakeIdleTimeout:           o.HandshakeTimeout,
		MaxIdleTimeout:                 o.IdleTimeout,
		KeepAlivePeriod:                o.KeepAlive,
		MaxIncomingStreams:             int64(o.MaxIncomingStreams),
		MaxIncomingUniStreams:          -1,
		InitialStreamReceiveWindow:     512 << 10,
		MaxStreamReceiveWindow:         uint64(o.StreamWindow),
		InitialConnectionReceiveWindow: 1 << 20,
		MaxConnectionReceiveWindow:     4 * uint64(o.StreamWindow),
	}
}

func dialQUIC(ctx context.Context, addr string, tlsConf *tls.Config, o Options) (Session, error) {
	conn, err := quic.DialAddr(ctx, addr, tlsConf, quicConfig(o))
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", addr, err)
	}
	if p := conn.ConnectionState().TLS.NegotiatedProtocol; p != ALPN {
		conn.CloseWithError(0, "wrong alpn")
		return nil, fmt.Errorf("quic dial %s: peer speaks %q, not %q", addr, p, ALPN)
	}
	return &quicSession{conn: conn, opts: o}, nil
}

func (s *quicSession) OpenStream(ctx context.Context) (net.Conn, error) {
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return s.wrap(st), nil
}

func (s *quicSession) AcceptStream(ctx context.Context) (net.Conn, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return s.wrap(st), nil
}

func (s *quicSession) wrap(st *quic.Stream) net.Conn {
	return withIdleTimeout(&quicStream{Stream: st, s: s}, s.opts.StreamIdleTimeout)
}

func (s *quicSession) Close() error {
	return s.conn.CloseWithError(0, "closed")
}

func (s *quicSession) Done() <-chan struct{} { return s.conn.Context().Done() }
func (s *quicSession) Transport() string     { return TransportQUIC }
func (s *quicSession) LocalAddr() net.Addr   { return s.conn.LocalAddr() }
func (s *quicSession) RemoteAddr() net.Addr  { return s.conn.RemoteAddr() }

// quicStream adapts a QUIC stream to net.Conn. A QUIC stream's Close only
// ends the write side; net.Conn's Close must end both, so Close also stops
// reading, and CloseWrite gives the half-close.
type quicStream struct {
	*quic.Stream
	s *quicSession
}

func (st *quicStream) Close() error {
	st.Stream.CancelRead(0)
	return st.Stream.Close()
}

func (st *quicStream) CloseWrite() error    { return st.Stream.Close() }
func (st *quicStream) LocalAddr() net.Addr  { return st.s.conn.LocalAddr() }
func (st *quicStream) RemoteAddr() net.Addr { return st.s.conn.RemoteAddr() }
