package tunnel

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// RTT returns the round-trip time of a session as its transport already
// measures it, at no cost to the peer: QUIC's smoothed RTT (RFC 9002), or,
// over TLS+yamux, the smoothed time the keepalive pings take to be
// answered (one every Options.KeepAlive). It reports false until the
// first measure.
//
// It sends nothing: an extra ping over yamux would spend the peer's ping
// budget (spec.md, "Limits").
func RTT(s Session) (time.Duration, bool) {
	r, ok := s.(interface{ rtt() time.Duration })
	if !ok {
		return 0, false
	}
	d := r.rtt()
	return d, d > 0
}

func (s *quicSession) rtt() time.Duration { return s.conn.ConnectionStats().SmoothedRTT }

func (s *yamuxSession) rtt() time.Duration { return s.pings.smoothed() }

// pingClock times this side's yamux pings: the send loop notes when a ping
// leaves (muxConn.Write), the receive loop when its answer comes
// (frameGuard.frame). yamux's keepalive waits for each answer before the
// next ping, so one ping is timed at a time; a ping yamux sends with
// Session.Ping while another is out is simply not timed.
type pingClock struct {
	base   time.Time     // monotonic origin of at
	id     atomic.Uint32 // the ping being timed
	at     atomic.Int64  // when it left, in ns since base; 0: none out
	smooth atomic.Int64  // the smoothed RTT in ns; 0: not measured yet
}

func newPingClock() *pingClock { return &pingClock{base: time.Now()} }

// sentFrame notes a frame header we write, if it is a ping we send.
func (c *pingClock) sentFrame(h []byte) {
	if h[1] != typePing || binary.BigEndian.Uint16(h[2:])&flagSYN == 0 {
		return
	}
	c.id.Store(binary.BigEndian.Uint32(h[lengthOffset:]))
	c.at.Store(max(int64(time.Since(c.base)), 1))
}

// answered notes a ping answer (ACK) from the peer with opaque value id.
func (c *pingClock) answered(id uint32) {
	at := c.at.Load()
	if at == 0 || c.id.Load() != id || !c.at.CompareAndSwap(at, 0) {
		return
	}
	sample := max(int64(time.Since(c.base))-at, 1)
	// As TCP's SRTT (RFC 6298): 7/8 of the old value, 1/8 of the sample.
	// Only the receive loop stores.
	if old := c.smooth.Load(); old == 0 {
		c.smooth.Store(sample)
	} else {
		c.smooth.Store(old - old/8 + sample/8)
	}
}

func (c *pingClock) smoothed() time.Duration { return time.Duration(c.smooth.Load()) }
