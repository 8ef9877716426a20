package tunnel

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

const flagFIN = 4

// TestFrameGuard feeds the guard frames as a peer sends them, one byte at
// a time and all at once, and checks which frame ends the session.
func TestFrameGuard(t *testing.T) {
	agent := guardLimits{peerParity: 1, maxOpened: 4, pingEvery: pingEvery} // the gateway's view of an agent
	gateway := guardLimits{peerParity: 0, pingEvery: pingEvery}             // the agent's view of a gateway
	cat := func(frames ...[]byte) []byte {
		var b []byte
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	ping := tunneltest.MuxHeader(typePing, flagSYN, 0, 7)
	tests := []struct {
		name  string
		lim   guardLimits
		sent  []byte // a SYN we sent first, if any
		in    []byte
		want  string // the limit, or "" when every frame passes
		clock time.Duration
	}{
		{"four pings pass", agent, nil, cat(ping, ping, ping, ping), "", 0},
		{"the fifth ping at once is one too many", agent, nil, cat(ping, ping, ping, ping, ping), LimitPings, 0},
		{"pings a second apart pass", agent, nil, cat(ping, ping, ping, ping, ping, ping, ping, ping, ping, ping), "", time.Second},
		{"ping answers are not counted", agent, nil, cat(ping, ping, ping, ping,
			tunneltest.MuxHeader(typePing, flagACK, 0, 1), tunneltest.MuxHeader(typePing, flagACK, 0, 2)), "", 0},
		{"the agent opens four streams", agent, nil, cat(
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 3, 0),
			tunneltest.MuxHeader(typeData, flagSYN, 5, 2), []byte("hi"), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 7, 0)), "", 0},
		{"the agent opens a fifth stream", agent, nil, cat(
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 3, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 5, 0), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 7, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 9, 0)), LimitStreams, 0},
		{"an agent's stream with an even id", agent, nil, tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 2, 0), LimitStreamIDs, 0},
		{"stream id 0", agent, nil, tunneltest.MuxHeader(typeData, flagSYN, 0, 0), LimitStreamIDs, 0},
		{"streams opened at once overtake each other", agent, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 3, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), tunneltest.MuxHeader(typeData, 0, 1, 1), []byte("x")), "", 0},
		{"an id used again is one more stream", agent, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0)), LimitStreams, 0},
		{"data for a stream never opened", agent, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0),
			tunneltest.MuxHeader(typeData, 0, 3, 4), []byte("data")), LimitStreamIDs, 0},
		{"a window update for one of ours never opened", agent, nil, tunneltest.MuxHeader(typeWindowUpdate, 0, 2, 1<<20), LimitStreamIDs, 0},
		{"a window update for one of ours", agent, tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 4, 0),
			cat(tunneltest.MuxHeader(typeWindowUpdate, flagACK, 4, 0), tunneltest.MuxHeader(typeWindowUpdate, 0, 2, 1<<20)), "", 0},
		{"frames for streams that ended pass", agent, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 3, 0), tunneltest.MuxHeader(typeData, flagFIN, 1, 0),
			tunneltest.MuxHeader(typeWindowUpdate, 0, 1, 100), tunneltest.MuxHeader(typeData, 0, 1, 3), []byte("abc")), "", 0},
		{"a body that looks like pings is a body", agent, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0),
			tunneltest.MuxHeader(typeData, 0, 1, 72), ping, ping, ping, ping, ping, ping), "", 0},
		{"the gateway opens streams with even ids", gateway, nil, cat(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 2, 0),
			tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 4, 0), tunneltest.MuxHeader(typeData, 0, 4, 1), []byte("x")), "", 0},
		{"a gateway's stream with an odd id", gateway, nil, tunneltest.MuxHeader(typeWindowUpdate, flagSYN, 1, 0), LimitStreamIDs, 0},
		{"wrong version is yamux's to refuse", agent, nil, []byte{1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, "", 0},
	}
	for _, tt := range tests {
		for _, bytewise := range []bool{false, true} {
			name := tt.name
			if bytewise {
				name += "/byte by byte"
			}
			t.Run(name, func(t *testing.T) {
				var called []string
				lim := tt.lim
				lim.onLimit = func(l string) { called = append(called, l) }
				g := newFrameGuard(lim)
				now := time.Unix(1000, 0)
				g.now = func() time.Time { now = now.Add(tt.clock); return now }
				if tt.sent != nil {
					g.sent(tt.sent)
				}
				var err error
				if bytewise {
					for i := range tt.in {
						if err = g.scan(tt.in[i : i+1]); err != nil {
							break
						}
					}
				} else {
					err = g.scan(tt.in)
				}
				var le *LimitError
				switch {
				case tt.want == "" && err != nil:
					t.Fatalf("got %v, want every frame to pass", err)
				case tt.want != "" && (!errors.As(err, &le) || le.Limit != tt.want):
					t.Fatalf("got %v, want the limit on %s", err, tt.want)
				}
				if tt.want != "" {
					if len(called) != 1 || called[0] != tt.want {
						t.Errorf("OnLimit: got %v, want one call with %s", called, tt.want)
					}
					if err := g.scan(ping); err == nil {
						t.Error("a frame after the limit passed")
					}
				}
			})
		}
	}
}

// rawYamuxClient is an agent written by hand: TLS with the tunnel's ALPN,
// then yamux frames from the test, and nothing read unless asked.
func rawYamuxClient(t *testing.T, p pki, addr string) *tls.Conn {
	t.Helper()
	conf := p.client.Clone()
	conf.NextProtos = []string{ALPN}
	conf.ServerName = "127.0.0.1"
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestYamuxPeerOverLimitsIsClosed plays a hostile agent against the
// gateway's listener before any hello: a ping flood without reading the
// answers (the flood that took a gateway to 40,000 goroutines), a stream
// flood, a window-update flood for streams never opened. Each ends the
// session, names the limit, and leaves the goroutine count where it was.
func TestYamuxPeerOverLimitsIsClosed(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		limit string
	}{
		{"100,000 pings, unread", tunneltest.Flood(100_000, func(i int) []byte { return tunneltest.MuxHeader(typePing, flagSYN, 0, uint32(i)) }), LimitPings},
		{"10,000 streams", tunneltest.Flood(10_000, func(i int) []byte { return tunneltest.MuxHeader(typeWindowUpdate, flagSYN, uint32(2*i+1), 0) }), LimitStreams},
		{"window updates for streams never opened", tunneltest.Flood(10_000, func(i int) []byte { return tunneltest.MuxHeader(typeWindowUpdate, 0, uint32(2*i+1), 1<<30) }), LimitStreamIDs},
		{"data for streams never opened", tunneltest.Flood(1000, func(i int) []byte {
			return append(tunneltest.MuxHeader(typeData, 0, uint32(2*i+101), 100), make([]byte, 100)...)
		}), LimitStreamIDs},
	}
	p := newPKI(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := make(chan string, 10)
			l := listen(t, p, Options{OnLimit: func(l string, _ net.Addr) { limits <- l }})
			before := runtime.NumGoroutine()
			c := rawYamuxClient(t, p, l.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := tunneltest.Open(t, l.Accept)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(tt.in) // fails once the gateway has closed
			// The most goroutines while the session lasts (3 s at most):
			// yamux's receive and send loops, keepalive and the session's
			// TLS are a handful; a goroutine per ping would be thousands.
			peak := runtime.NumGoroutine()
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				peak = max(peak, runtime.NumGoroutine())
				select {
				case <-s.Done():
					end = time.Time{}
				case <-time.After(5 * time.Millisecond):
				}
			}
			if peak > before+50 {
				t.Errorf("goroutines: %d before the flood, %d at its peak, want a handful more", before, peak)
			}
			select {
			case <-s.Done():
			case <-ctx.Done():
				t.Fatal("the session is still open after the flood")
			}
			select {
			case got := <-limits:
				if got != tt.limit {
					t.Errorf("limit: got %s, want %s", got, tt.limit)
				}
			case <-ctx.Done():
				t.Fatal("OnLimit was not called")
			}
		})
	}
}

// answerPings reads a yamux peer's frames, answers its pings, as the
// hostile peer must to keep the session (yamux's keepalive), and counts
// the streams it acknowledged. Each answer is one Write, which tls.Conn
// keeps whole beside the caller's.
func answerPings(c net.Conn, acked *atomic.Int64) {
	h := make([]byte, headerSize)
	for {
		if _, err := io.ReadFull(c, h); err != nil {
			return
		}
		flags := binary.BigEndian.Uint16(h[2:])
		if h[1] <= typeWindowUpdate && flags&flagACK != 0 && acked != nil {
			acked.Add(1)
		}
		switch {
		case h[1] == typeData:
			if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(h[8:]))); err != nil {
				return
			}
		case h[1] == typePing && flags&flagSYN != 0:
			c.Write(tunneltest.MuxHeader(typePing, flagACK, 0, binary.BigEndian.Uint32(h[8:])))
		}
	}
}

// TestYamuxAgentBoundsGatewayStreams plays a hostile gateway written by
// hand against an agent's session: it opens streams that the agent takes
// and closes, and never sends their FIN, so that yamux keeps each for its
// close timeout. The agent ends the session once it holds 4 × 1,024.
func TestYamuxAgentBoundsGatewayStreams(t *testing.T) {
	p := newPKI(t)
	conf := p.server.Clone()
	conf.NextProtos = []string{ALPN}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	defer func() {
		close(done)
		ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // the hostile gateway
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var acked atomic.Int64
		go answerPings(c, &acked)
		// At most 512 streams not yet acknowledged, as an honest yamux
		// opener has (its backlog): the agent takes every one.
		for i := range 20_000 {
			for int64(i)-acked.Load() > 512 {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
			}
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(tunneltest.MuxHeader(typeWindowUpdate, flagSYN, uint32(2*i+2), 0)); err != nil {
				return
			}
		}
		<-done
	}()
	limits := make(chan string, 10)
	d := &Dialer{Transport: DialTCP, TLS: p.client, Options: Options{OnLimit: func(l string, _ net.Addr) { limits <- l }}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := d.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accepted := 0
	for {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			break
		}
		accepted++
		st.Close() // waits for the gateway's FIN, which never comes
	}
	select {
	case got := <-limits:
		if got != LimitStreams {
			t.Errorf("limit: got %s, want %s", got, LimitStreams)
		}
	case <-ctx.Done():
		t.Fatalf("the session was not closed; %d streams accepted", accepted)
	}
	if want := streamFactor * DefaultMaxIncomingStreams; accepted > want {
		t.Errorf("accepted %d streams, want at most %d", accepted, want)
	}
	t.Logf("closed after %d streams", accepted)
}

// TestQUICHandshakeFloodBounded sends the gateway's listener 1,000 QUIC
// Initials from 1,000 addresses, none of which ever answers. The listener
// keeps state for a bounded number of them (beyond quicRetryAbove it asks
// for a Retry, which costs it nothing), and sends no address more than
// three times what it received (the anti-amplification limit).
func TestQUICHandshakeFloodBounded(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	before := runtime.NumGoroutine()
	const attempts = 1000
	conns := make([]*tunneltest.FirstDatagramOnly, attempts)
	var wg sync.WaitGroup
	for i := range conns {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c := &tunneltest.FirstDatagramOnly{PacketConn: udp}
		conns[i] = c
		wg.Go(func() {
			tr := &quic.Transport{Conn: c}
			defer tr.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			conf := p.client.Clone()
			conf.NextProtos = []string{ALPN}
			conf.ServerName = "127.0.0.1"
			if conn, err := tr.Dial(ctx, l.udp.LocalAddr(), conf, quicConfig(Options{}.withDefaults())); err == nil {
				conn.CloseWithError(0, "")
				t.Error("a handshake completed with its answers dropped")
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	// The clients are gone; what remains is the listener's state for the
	// handshakes it took, until its handshake timeout.
	grown := runtime.NumGoroutine() - before
	pending := l.quicPending.Load()
	t.Logf("after %d unanswered Initials: %d handshakes held, %d goroutines more", attempts, pending, grown)
	if pending > quicRetryAbove+16 {
		t.Errorf("handshakes held: got %d, want about %d (then Retry)", pending, quicRetryAbove)
	}
	if grown > 8*quicRetryAbove {
		t.Errorf("goroutines: %d more after the flood, want at most %d", grown, 8*quicRetryAbove)
	}
	for i, c := range conns {
		if got, sent := c.Got.Load(), c.Sent.Load(); got > 3*sent {
			t.Errorf("address %d: the listener sent %d bytes for %d received, more than 3 times", i, got, sent)
		}
	}
}

// TestQUICOffersNoDatagrams: a peer that asks for QUIC datagrams does not
// get them, on either side (a DATAGRAM frame is then a protocol violation
// that closes the connection), nor unidirectional streams.
func TestQUICOffersNoDatagrams(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p, Options{})
	conf := p.client.Clone()
	conf.NextProtos = []string{ALPN}
	conf.ServerName = "127.0.0.1"
	qc := quicConfig(Options{}.withDefaults())
	qc.EnableDatagrams = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, l.Addr().String(), conf, qc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	if conn.ConnectionState().SupportsDatagrams.Remote {
		t.Error("the listener offers datagrams")
	}
	if err := conn.SendDatagram([]byte("x")); err == nil {
		t.Error("a datagram was sent to the listener")
	}
	tunneltest.Open(t, l.Accept)
	if _, err := conn.OpenUniStream(); err == nil { // no credit: it fails at once
		t.Error("a unidirectional stream opened to the listener")
	}
}
