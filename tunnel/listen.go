package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("tunnel listener closed")

// maxPendingHandshakes bounds the TLS handshakes in progress on TCP, so
// that a flood of half-open connections cannot exhaust the gateway:
// beyond it, new connections are refused at once. More does not help a
// reconnect storm there: the handshakes are CPU-bound, and with 2,048 at
// once a restarted gateway under 10,000 agents did not answer /readyz
// for more than 10 s (docs/benchmarks.md, section 6).
const maxPendingHandshakes = 512

// maxPendingQUIC bounds the QUIC connections from their first packet
// until the listener accepts them. Beyond quicRetryAbove each has proved
// its source address, and the count includes connections whose handshake
// is done but that wait in quic-go's accept queue, so it runs higher than
// TCP's for the same work: at 512, a reconnect storm of 10,000 agents was
// refused 28,092 times and took 73 s to be back, at 2,048 4,717 times and
// 36 s (docs/benchmarks.md, section 6).
const maxPendingQUIC = 2048

// quicRetryAbove is the number of QUIC handshakes in progress above which
// a new connection must first prove that it owns its source address (a
// QUIC Retry, one more round trip): a flood from spoofed addresses then
// costs the gateway no connection state, and the gateway cannot be used
// to reflect traffic at someone else.
const quicRetryAbove = 128

// errTooManyHandshakes refuses a QUIC connection over maxPendingQUIC.
var errTooManyHandshakes = errors.New("too many handshakes in progress")

// Listener accepts tunnel sessions on one port over both transports: QUIC
// on UDP and TLS+yamux on TCP.
type Listener struct {
	tcp  net.Listener
	udp  net.PacketConn
	qt   *quic.Transport // owns udp; outlives ql so sessions survive StopAccepting
	ql   *quic.Listener
	tls  *tls.Config
	opts Options
	log  *slog.Logger

	ctx      context.Context // cancelled by StopAccepting; ends handshakes
	cancel   context.CancelFunc
	sessions chan Session
	closing  chan struct{}
	stopOnce sync.Once      // stops accepting once
	wg       sync.WaitGroup // accept loops and handshakes
	sem      chan struct{}  // pending TCP handshakes

	quicPending atomic.Int64 // QUIC connections not yet accepted, handshakes included
}

// Listen listens on addr (":8443", "127.0.0.1:0") for TCP and UDP on the
// same port. tlsConf must hold the server certificate; ALPN is set here.
// opts.MaxIncomingStreams is the number of streams an agent may open, and
// defaults to 1 here: agents open only the control stream.
func Listen(addr string, tlsConf *tls.Config, opts Options, log *slog.Logger) (*Listener, error) {
	if opts.MaxIncomingStreams <= 0 {
		opts.MaxIncomingStreams = 1
	}
	opts = opts.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc := tlsConf.Clone()
	tc.NextProtos = []string{ALPN}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}

	tcpL, udpC, err := listenPair(addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{
		tcp: tcpL, udp: udpC, tls: tc, opts: opts, log: log,
		sessions: make(chan Session),
		closing:  make(chan struct{}),
		sem:      make(chan struct{}, maxPendingHandshakes),
	}
	// An explicit Transport, unlike quic.Listen, keeps accepted
	// connections alive when the listener closes, so a draining gateway
	// can still send goaway and finish requests on them.
	l.qt = &quic.Transport{
		Conn:                udpC,
		ConnContext:         l.quicConnContext,
		VerifySourceAddress: func(net.Addr) bool { return l.quicPending.Load() >= quicRetryAbove },
	}
	l.ql, err = l.qt.Listen(tc, quicConfig(opts))
	if err != nil {
		tcpL.Close()
		l.qt.Close()
		udpC.Close()
		return nil, fmt.Errorf("quic listen %s: %w", udpC.LocalAddr(), err)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(2)
	go l.acceptTCP()
	go l.acceptQUIC()
	return l, nil
}

// listenPair binds TCP and UDP on the same port. With port 0 the TCP port
// is chosen first and UDP takes the same number, retrying if it is taken.
func listenPair(addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %q: %w", addr, err)
	}
	for range 20 {
		t, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		p := strconv.Itoa(t.Addr().(*net.TCPAddr).Port)
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, p))
		if err == nil {
			return t, u, nil
		}
		t.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
	}
	return nil, nil, fmt.Errorf("listen %s: no port free for both tcp and udp", addr)
}

// Addr is the TCP address; the UDP port is the same.
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// Accept waits for the next session whose transport handshake completed.
func (l *Listener) Accept(ctx context.Context) (Session, error) {
	select {
	case s := <-l.sessions:
		return s, nil
	case <-l.closing:
		return nil, ErrListenerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// StopAccepting stops taking new sessions and waits for the accept loops
// to end. Sessions already accepted go on, QUIC ones included: their
// owner closes them, then calls Close.
func (l *Listener) StopAccepting() {
	l.stopOnce.Do(func() {
		close(l.closing)
		l.cancel()
		l.tcp.Close()
		l.ql.Close()
	})
	l.wg.Wait()
}

// Close stops accepting and releases the UDP socket, which ends every QUIC
// session still running on it.
func (l *Listener) Close() error {
	l.StopAccepting()
	l.qt.Close()
	return l.udp.Close()
}

func (l *Listener) deliver(s Session) {
	select {
	case l.sessions <- s:
	case <-l.closing:
		s.Close()
	}
}

func (l *Listener) acceptTCP() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			select {
			case <-l.closing:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.log.Warn("tunnel tcp accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			c.Close() // too many handshakes in progress
			l.limit(LimitHandshakes, c.RemoteAddr())
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			s, err := l.handshakeTCP(c)
			if err != nil {
				l.log.Debug("tunnel tcp handshake", "remote", c.RemoteAddr(), "err", err)
				c.Close()
				return
			}
			l.deliver(s)
		}()
	}
}

func (l *Listener) handshakeTCP(c net.Conn) (Session, error) {
	ctx, cancel := context.WithTimeout(l.ctx, l.opts.HandshakeTimeout)
	defer cancel()
	tc := tls.Server(c, l.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != ALPN {
		return nil, fmt.Errorf("client speaks %q, not %q", p, ALPN)
	}
	return newYamux(tc, false, l.opts)
}

func (l *Listener) acceptQUIC() {
	defer l.wg.Done()
	for {
		conn, err := l.ql.Accept(l.ctx)
		if err != nil {
			return // closed
		}
		// quic-go only completes connections whose handshake succeeded;
		// ALPN is enforced by the TLS config (no overlap fails the handshake).
		if done, ok := conn.Context().Value(handshakeKey{}).(func()); ok {
			done()
		}
		l.deliver(&quicSession{conn: conn, opts: l.opts})
	}
}

type handshakeKey struct{}

// quicConnContext counts a QUIC connection from its first packet until the
// listener accepts it (or it fails), and refuses it when
// maxPendingQUIC are in progress already.
func (l *Listener) quicConnContext(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	if l.quicPending.Add(1) > maxPendingQUIC {
		l.quicPending.Add(-1)
		l.limit(LimitHandshakes, ci.RemoteAddr)
		return nil, errTooManyHandshakes
	}
	done := sync.OnceFunc(func() { l.quicPending.Add(-1) })
	context.AfterFunc(ctx, done) // the handshake failed, or the connection ended unaccepted
	return context.WithValue(ctx, handshakeKey{}, done), nil
}

func (l *Listener) limit(name string, remote net.Addr) {
	if l.opts.OnLimit != nil {
		l.opts.OnLimit(name, remote)
	}
}
