package tunnel

import (
	"cmp"
	"net"
	"time"
)

// Options tunes a session. The zero value means the defaults below, chosen
// so that a dead peer is noticed within seconds and a bulk transfer is not
// starved by small flow-control windows.
type Options struct {
	// KeepAlive is how often an idle session sends a keepalive.
	KeepAlive time.Duration
	// IdleTimeout closes a session that has heard nothing from its peer
	// for this long (QUIC idle timeout; yamux keepalive timeout).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the transport handshake (TCP+TLS or QUIC).
	HandshakeTimeout time.Duration
	// MaxIncomingStreams bounds the streams the peer may have open at
	// once. The agent raises it (the gateway opens one stream per
	// in-flight request); the gateway keeps it at 1, the control stream.
	MaxIncomingStreams int
	// StreamIdleTimeout is the read or write deadline put on a stream for
	// each call when its user has set none, so that a stalled peer cannot
	// hang a reader (yamux GHSA-29qp-crvh-w22m).
	StreamIdleTimeout time.Duration
	// StreamWindow is the largest per-stream receive window, in bytes.
	StreamWindow uint32
	// OnLimit, when set, is called each time a peer goes over one of the
	// limits of spec.md ("Limits"), with the limit's name (LimitPings,
	// LimitStreams, LimitStreamIDs, LimitHandshakes) and the peer's
	// address: the session is closed, or the connection refused. It is
	// called from the session's own goroutines and must not block.
	OnLimit func(limit string, remote net.Addr)
}

// Defaults of Options.
const (
	DefaultKeepAlive          = 2 * time.Second
	DefaultIdleTimeout        = 8 * time.Second
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultMaxIncomingStreams = 1024
	DefaultStreamIdleTimeout  = 5 * time.Minute
	// DefaultStreamWindow is 2 MiB: it moves 42 MB/s per stream at 50 ms
	// of round trip, more than most customers' links, and keeps a TCP
	// session's buffers small (8 MiB cost both sides 10-20 MiB of peak
	// RSS in bulk transfers, docs/benchmarks.md).
	DefaultStreamWindow = 2 << 20
	// DefaultDrainTimeout bounds how long a draining side lets the
	// requests in flight finish (spec.md, "Closing a session
	// gracefully"); the agent's and the gateway's DrainTimeout default
	// to it.
	DefaultDrainTimeout = 30 * time.Second
)

// withDefaults fills each option left at zero with its default.
func (o Options) withDefaults() Options {
	o.KeepAlive = cmp.Or(o.KeepAlive, DefaultKeepAlive)
	o.IdleTimeout = cmp.Or(o.IdleTimeout, DefaultIdleTimeout)
	o.HandshakeTimeout = cmp.Or(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.MaxIncomingStreams = cmp.Or(o.MaxIncomingStreams, DefaultMaxIncomingStreams)
	o.StreamIdleTimeout = cmp.Or(o.StreamIdleTimeout, DefaultStreamIdleTimeout)
	o.StreamWindow = cmp.Or(o.StreamWindow, DefaultStreamWindow)
	return o
}
