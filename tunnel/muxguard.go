package tunnel

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Limits a peer can go over (spec.md, "Limits"). They name the cause in
// LimitError and in Options.OnLimit.
const (
	// LimitPings: yamux pings (SYN) faster than the ping budget. yamux
	// v0.1.2 answers each in a goroutine of its own that waits up to the
	// write timeout when the peer does not read; unbounded, 100,000 pings
	// took a gateway to 40,000 goroutines.
	LimitPings = "pings"
	// LimitStreams: more streams opened by the peer than the session
	// allows (the gateway: in the session's life; the agent: held at once).
	LimitStreams = "streams"
	// LimitStreamIDs: a frame for a stream that was never opened, or a
	// stream opened with an id the peer may not use (the other side's, or
	// zero).
	LimitStreamIDs = "stream_ids"
	// LimitHandshakes: more transport handshakes in progress than the
	// listener takes (maxPendingHandshakes on TCP, maxPendingQUIC on
	// QUIC); the connection is refused.
	LimitHandshakes = "handshakes"
)

// LimitError ends a session whose peer went over one of its limits.
type LimitError struct{ Limit string }

func (e *LimitError) Error() string { return "tunnel peer went over the limit on " + e.Limit }

// The ping budget of a session: a token bucket of pingBurst pings that
// refills by one every pingEvery (or every half keepalive interval, when
// Options make it shorter than 2 s, as tests do). An honest yamux peer
// sends one ping per keepalive interval (2 s) and never has two
// unanswered (keepalive waits for each answer), so it uses half of the
// budget. With the write timeout of 8 s, a peer that sends within the
// budget and never reads keeps at most pingBurst + 8 s / pingEvery
// answers waiting: 12 goroutines.
const (
	pingBurst = 4
	pingEvery = time.Second
)

// streamFactor sets the stream limits from Options.MaxIncomingStreams
// (spec.md, "Limits"): on the gateway, an agent may open 4 × 1 streams in
// a session's life (it opens one, the control stream); on the agent, the
// session may hold 4 × 1,024 streams when the gateway opens another
// (1,024 served, up to 1,024 in the accept backlog, and streams closed on
// the agent's side that wait for the gateway's FIN).
const streamFactor = 4

// guardLimits are the limits of one side of a yamux session.
type guardLimits struct {
	// peerParity is the parity of the stream ids the peer opens: 1 (odd)
	// when the peer is the yamux client (the agent), 0 when it is the
	// server.
	peerParity uint32
	// maxOpened bounds the streams the peer opens in the session's life;
	// 0: no bound.
	maxOpened int
	// maxStreams bounds the streams the session holds (either side's,
	// yamux's count) when the peer opens one more; 0: no bound.
	maxStreams int
	// pingEvery refills the ping budget by one.
	pingEvery time.Duration
	onLimit   func(limit string) // Options.OnLimit with the peer's address
}

func yamuxGuardLimits(o Options, client bool, remote net.Addr) guardLimits {
	lim := guardLimits{peerParity: 1, maxOpened: streamFactor * o.MaxIncomingStreams}
	if client {
		lim = guardLimits{peerParity: 0, maxStreams: streamFactor * o.MaxIncomingStreams}
	}
	lim.pingEvery = min(pingEvery, o.KeepAlive/2)
	if o.OnLimit != nil {
		lim.onLimit = func(l string) { o.OnLimit(l, remote) }
	}
	return lim
}

// frameGuard reads the yamux frame headers a peer sends as the bytes pass
// to yamux (muxConn.Read), and ends the session (the read fails) when the
// peer goes over a limit. It reads headers only: a data frame's body is
// counted and skipped. Frames yamux itself refuses (wrong version or
// type) are left to yamux.
//
// scan is called by yamux's receive loop only; sent by its send loop.
type frameGuard struct {
	lim guardLimits
	now func() time.Time

	hdr  [headerSize]byte
	have int   // bytes of hdr read so far
	body int64 // bytes of the current data frame's body still to come
	err  error // the limit gone over; every later scan returns it

	pingTokens float64
	pingLast   time.Time
	opened     int    // streams the peer opened
	lastPeerID uint32 // the highest id of a stream the peer opened

	localMax atomic.Uint32                 // the highest id of a stream we opened
	mux      atomic.Pointer[yamux.Session] // for its stream count; nil until set

	pings *pingClock // times our pings by their answers (rtt.go)
}

func newFrameGuard(lim guardLimits) *frameGuard {
	return &frameGuard{lim: lim, now: time.Now, pingTokens: pingBurst, pings: newPingClock()}
}

// yamux frame types and flags (yamux spec.md).
const (
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3
	flagSYN          = 1
	flagACK          = 2
)

// scan follows the frames in b, the next bytes from the peer.
func (g *frameGuard) scan(b []byte) error {
	if g.err != nil {
		return g.err
	}
	for len(b) > 0 {
		if g.body > 0 {
			k := min(g.body, int64(len(b)))
			g.body -= k
			b = b[k:]
			continue
		}
		k := copy(g.hdr[g.have:], b)
		g.have += k
		b = b[k:]
		if g.have < headerSize {
			return nil
		}
		g.have = 0
		if limit := g.frame(); limit != "" {
			g.err = &LimitError{Limit: limit}
			if g.lim.onLimit != nil {
				g.lim.onLimit(limit)
			}
			return g.err
		}
	}
	return nil
}

// frame judges the header in g.hdr and returns the limit it goes over, or "".
func (g *frameGuard) frame() string {
	h := g.hdr[:]
	if h[0] != muxVersion || h[1] > typeGoAway {
		return "" // yamux ends the session itself
	}
	flags := binary.BigEndian.Uint16(h[2:])
	id := binary.BigEndian.Uint32(h[4:])
	switch h[1] {
	case typePing:
		if flags&flagSYN != 0 && !g.takePing() {
			return LimitPings
		}
		if flags&flagACK != 0 {
			g.pings.answered(binary.BigEndian.Uint32(h[lengthOffset:]))
		}
	case typeData, typeWindowUpdate:
		if h[1] == typeData {
			g.body = int64(binary.BigEndian.Uint32(h[lengthOffset:]))
		}
		if flags&flagSYN != 0 {
			return g.peerOpens(id)
		}
		if !g.known(id) {
			return LimitStreamIDs
		}
	}
	return ""
}

func (g *frameGuard) takePing() bool {
	now := g.now()
	if !g.pingLast.IsZero() {
		g.pingTokens = min(pingBurst, g.pingTokens+float64(now.Sub(g.pingLast))/float64(g.lim.pingEvery))
	}
	g.pingLast = now
	if g.pingTokens < 1 {
		return false
	}
	g.pingTokens--
	return true
}

// peerOpens judges a SYN: the peer opens stream id. Ids need not come in
// order: yamux takes an id under its lock but sends the SYN after it, so
// streams opened at once can overtake each other. An id used again is a
// stream more, within the same limits (yamux ends the session itself if
// the first is still open).
func (g *frameGuard) peerOpens(id uint32) string {
	if id == 0 || id%2 != g.lim.peerParity {
		return LimitStreamIDs
	}
	g.lastPeerID = max(g.lastPeerID, id)
	g.opened++
	if g.lim.maxOpened > 0 && g.opened > g.lim.maxOpened {
		return LimitStreams
	}
	if g.lim.maxStreams > 0 {
		if mux := g.mux.Load(); mux != nil && mux.NumStreams() >= g.lim.maxStreams {
			return LimitStreams
		}
	}
	return ""
}

// known reports whether a frame for stream id may come: the stream was
// opened once, by either side. Frames for streams that have since ended
// come in honest races, cost yamux nothing to drop, and pass.
func (g *frameGuard) known(id uint32) bool {
	if id == 0 {
		return false
	}
	if id%2 == g.lim.peerParity {
		return id <= g.lastPeerID
	}
	return id <= g.localMax.Load()
}

// sent notes a frame header we write: a SYN opens one of our streams; a
// ping starts its clock.
func (g *frameGuard) sent(h []byte) {
	if h[0] == muxVersion {
		g.pings.sentFrame(h)
	}
	if h[0] != muxVersion || (h[1] != typeData && h[1] != typeWindowUpdate) {
		return
	}
	if binary.BigEndian.Uint16(h[2:])&flagSYN == 0 {
		return
	}
	id := binary.BigEndian.Uint32(h[4:])
	if id > g.localMax.Load() { // only the send loop stores
		g.localMax.Store(id)
	}
}
