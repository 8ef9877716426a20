package e2e

// The rogue-peer suite: a rogue agent against the real gateway and a
// rogue gateway against the real agent, speaking the tunnel protocol by
// hand (yamux frame headers written byte by byte over crypto/tls, QUIC
// through quic-go directly, control frames as a length and JSON), not
// through the project's tunnel package. Each attack reads the victim's
// go_goroutines and process_resident_memory_bytes from its admin /metrics
// before and after, and asserts bounded growth; the victim must keep
// serving the honest agents. MEASURE lines give the figures
// (docs/security.md quotes them).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// The yamux frame (hashicorp/yamux spec.md), read here by hand;
// tunneltest.MuxHeader writes its header by hand too.
const (
	muxData         = 0
	muxWindowUpdate = 1
	muxPing         = 2
	muxSYN          = 1
	muxACK          = 2
	muxFIN          = 4
	muxHeaderSize   = 12
	muxWindow       = 256 << 10 // yamux's initial stream window
	alpn            = "oxbroker/1"
)

// controlFrame is a control frame by hand: a 4-byte length, then JSON.
func controlFrame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func helloJSON(broker, token string, sites string) string {
	return fmt.Sprintf(`{"type":"hello","protocol":1,"broker_id":%q,"token":%q,"agent_id":"rogue","agent_version":"0","hostname":"rogue","os":"x","sites":%s}`,
		broker, token, sites)
}

// rawMux is one side of a yamux session written by hand over TLS. Its
// read loop (serve) answers pings, follows the control stream's (id 1)
// send window, and collects what each stream receives.
type rawMux struct {
	c  net.Conn
	br *bufio.Reader // read by one goroutine at a time: serve, or a handshake before it

	wmu  sync.Mutex   // one frame per Write
	hold sync.RWMutex // serve reads under its read lock; Lock stops reading

	mu     sync.Mutex // guards what follows
	cond   *sync.Cond
	window int64 // our send window on stream 1
	in     map[uint32]*bytes.Buffer
	fin    map[uint32]bool
	err    error // the read loop's end
}

func newRawMux(c net.Conn) *rawMux {
	m := &rawMux{c: c, br: bufio.NewReader(c), window: muxWindow, in: map[uint32]*bytes.Buffer{}, fin: map[uint32]bool{}}
	m.cond = sync.NewCond(&m.mu)
	return m
}

func (m *rawMux) write(b []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := m.c.Write(b)
	return err
}

// serve reads frames until the connection ends.
func (m *rawMux) serve() {
	var err error
	for err == nil {
		m.hold.RLock()
		err = m.readFrame()
		m.hold.RUnlock()
	}
	m.mu.Lock()
	m.err = err
	m.cond.Broadcast()
	m.mu.Unlock()
}

// readFrame reads and handles one frame.
func (m *rawMux) readFrame() error {
	br := m.br
	h := make([]byte, muxHeaderSize)
	{
		if _, err := io.ReadFull(br, h); err != nil {
			return err
		}
		typ, flags := h[1], binary.BigEndian.Uint16(h[2:])
		id, length := binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint32(h[8:])
		var body []byte
		if typ == muxData && length > 0 {
			body = make([]byte, length)
			if _, err := io.ReadFull(br, body); err != nil {
				return err
			}
		}
		switch {
		case typ == muxPing && flags&muxSYN != 0:
			m.write(tunneltest.MuxHeader(muxPing, muxACK, 0, length))
		case typ == muxWindowUpdate || typ == muxData:
			if flags&muxSYN != 0 && id == 1 { // the agent opened the control stream
				m.write(tunneltest.MuxHeader(muxWindowUpdate, muxACK, 1, 0))
			}
			m.mu.Lock()
			if typ == muxWindowUpdate && id == 1 {
				m.window += int64(length)
			}
			if len(body) > 0 {
				if m.in[id] == nil {
					m.in[id] = &bytes.Buffer{}
				}
				m.in[id].Write(body)
			}
			if flags&muxFIN != 0 {
				m.fin[id] = true
			}
			m.cond.Broadcast()
			m.mu.Unlock()
			if len(body) > 0 && id != 1 { // give the window back, as yamux does
				m.write(tunneltest.MuxHeader(muxWindowUpdate, 0, id, length))
			}
		}
	}
	return nil
}

// until waits, with m.mu held, until done holds, or timeout has passed,
// and reports whether done held. done is called once per wake-up (serve's
// broadcasts), so it may take what it waits for.
func (m *rawMux) until(timeout time.Duration, done func() bool) bool {
	stop := time.AfterFunc(timeout, func() {
		m.mu.Lock()
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer stop.Stop()
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		m.cond.Wait()
	}
}

// waitClosed reports whether the peer closed the connection within d
// (serve reads it).
func (m *rawMux) waitClosed(d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.until(d, func() bool { return m.err != nil })
}

// sendCtrl writes a control frame on stream 1 within its send window.
func (m *rawMux) sendCtrl(frame []byte) error {
	for len(frame) > 0 {
		m.mu.Lock()
		for m.window <= 0 && m.err == nil {
			m.cond.Wait()
		}
		if m.err != nil {
			m.mu.Unlock()
			return m.err
		}
		n := int(min(m.window, 16<<10, int64(len(frame))))
		m.window -= int64(n)
		m.mu.Unlock()
		if err := m.write(append(tunneltest.MuxHeader(muxData, 0, 1, uint32(n)), frame[:n]...)); err != nil {
			return err
		}
		frame = frame[n:]
	}
	return nil
}

// ctrlMessage takes a complete control message off stream 1, if one has
// come. Callers hold m.mu.
func (m *rawMux) ctrlMessage() (map[string]any, bool, error) {
	b := m.in[1]
	if b == nil || b.Len() < 4 {
		return nil, false, nil
	}
	n := int(binary.BigEndian.Uint32(b.Bytes()))
	if b.Len() < 4+n {
		return nil, false, nil
	}
	b.Next(4)
	var msg map[string]any
	err := json.Unmarshal(b.Next(n), &msg)
	return msg, true, err
}

// readCtrl reads frames itself (serve is not running) until a control
// message has come.
func (m *rawMux) readCtrl(timeout time.Duration) (map[string]any, error) {
	m.c.SetReadDeadline(time.Now().Add(timeout))
	defer m.c.SetReadDeadline(time.Time{})
	for {
		m.mu.Lock()
		msg, ok, err := m.ctrlMessage()
		m.mu.Unlock()
		if ok {
			return msg, err
		}
		if err := m.readFrame(); err != nil {
			return nil, err
		}
	}
}

// recvCtrl waits for the next control message on stream 1 (serve reads).
func (m *rawMux) recvCtrl(timeout time.Duration) (map[string]any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		msg map[string]any
		ok  bool
		err error
	)
	m.until(timeout, func() bool {
		msg, ok, err = m.ctrlMessage()
		return ok || m.err != nil
	})
	switch {
	case ok:
		return msg, err
	case m.err != nil:
		return nil, m.err
	}
	return nil, errors.New("no control message in time")
}

// waitStream waits until the peer has closed stream id and returns what
// it sent on it.
func (m *rawMux) waitStream(id uint32, timeout time.Duration) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.until(timeout, func() bool { return m.fin[id] }) {
		return nil, fmt.Errorf("stream %d not closed by the peer (%v)", id, m.err)
	}
	if m.in[id] == nil {
		return nil, nil
	}
	return m.in[id].Bytes(), nil
}

// footprint is what an attack reads of its victim's /metrics.
type footprint struct{ goroutines, rssMiB float64 }

func readFootprint(t *testing.T, admin string) footprint {
	t.Helper()
	m := scrapeMetrics(t, admin)
	g, ok1 := metricValue(m, "go_goroutines")
	rss, ok2 := metricValue(m, "process_resident_memory_bytes")
	if !ok1 || !ok2 {
		t.Fatalf("no go_goroutines or process_resident_memory_bytes at %s", admin)
	}
	return footprint{g, rss / (1 << 20)}
}

// victim is a process under attack and its admin listener.
type victim struct {
	name  string
	admin string
	p     *proc
}

// Bounds of an attack's cost to its victim, read right after it: the
// highest of the samples over a second. The machine is loaded; an
// unbounded attack costs ten thousands of goroutines and hundreds of MiB.
const (
	attackGoroutines = 300
	attackRSSMiB     = 48
)

// attack runs f against v and checks that it cost v a bounded number of
// goroutines and RSS: read before, and after, as the peak of a second of
// samples. f calls after itself when the attack is in full swing (the
// flood is written and not yet read); else it is read once f returns.
func (v victim) attack(t *testing.T, name string, maxGoroutines, maxRSSMiB float64, f func(t *testing.T, after func())) {
	t.Run(name, func(t *testing.T) {
		before := readFootprint(t, v.admin)
		peak, sampled := before, false
		after := func() {
			sampled = true
			for range 10 {
				fp := readFootprint(t, v.admin)
				peak.goroutines, peak.rssMiB = max(peak.goroutines, fp.goroutines), max(peak.rssMiB, fp.rssMiB)
				time.Sleep(100 * time.Millisecond)
			}
		}
		f(t, after)
		if !sampled {
			after()
		}
		t.Logf("MEASURE %s: %s goroutines %.0f before, %.0f after; RSS %.1f MiB before, %.1f MiB after",
			t.Name(), v.name, before.goroutines, peak.goroutines, before.rssMiB, peak.rssMiB)
		if peak.goroutines > before.goroutines+maxGoroutines {
			t.Errorf("%s goroutines grew from %.0f to %.0f (bound +%.0f)", v.name, before.goroutines, peak.goroutines, maxGoroutines)
		}
		if peak.rssMiB > before.rssMiB+maxRSSMiB {
			t.Errorf("%s RSS grew from %.1f to %.1f MiB (bound +%.0f MiB)", v.name, before.rssMiB, peak.rssMiB, maxRSSMiB)
		}
		select {
		case <-v.p.done:
			t.Fatalf("%s exited: %v", v.name, v.p.cmd.ProcessState)
		default:
		}
	})
}

// TestRogue runs the rogue agent against the real gateway and the rogue
// gateway against the real agent, at once.
func TestRogue(t *testing.T) {
	concurrently(t, []namedTest{
		{"agent-vs-gateway", testRogueAgent},
		{"gateway-vs-agent", testRogueGateway},
	})
}

// rogueAgent dials e's tunnel port over TLS with the tunnel's ALPN.
func rogueTLS(t *testing.T, e *env) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.tunnelAddr, &tls.Config{RootCAs: gatewayRoots(t, e), ServerName: "127.0.0.1", NextProtos: []string{alpn}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rogueSession is a rogue agent's TCP session after its welcome. With
// serve, a goroutine reads it from then on (answering pings, following
// the window); without, nothing reads it any more.
func rogueSession(t *testing.T, e *env, serve bool) *rawMux {
	t.Helper()
	m := newRawMux(rogueTLS(t, e))
	m.write(tunneltest.MuxHeader(muxWindowUpdate, muxSYN, 1, 0))
	if err := m.sendCtrl(controlFrame(helloJSON("acme", e.BrokerToken, `[{"name":"jira"}]`))); err != nil {
		t.Fatal(err)
	}
	msg, err := m.readCtrl(10 * time.Second)
	if err != nil || msg["type"] != "welcome" {
		t.Fatalf("hello: got %v, %v; want welcome", msg, err)
	}
	if serve {
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.serve()
		}()
		t.Cleanup(func() { m.c.Close(); <-done })
	}
	return m
}

// rogueQUIC is a rogue agent's QUIC session after its welcome: quic-go,
// and the control frames by hand on the first stream.
func rogueQUIC(t *testing.T, e *env, conf *quic.Config) (*quic.Conn, *quic.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, e.tunnelAddr, &tls.Config{RootCAs: gatewayRoots(t, e), ServerName: "127.0.0.1", NextProtos: []string{alpn}}, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseWithError(0, "") })
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write(controlFrame(helloJSON("acme", e.BrokerToken, `[]`)))
	var n [4]byte
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(st, n[:]); err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	io.CopyN(io.Discard, st, int64(binary.BigEndian.Uint32(n[:])))
	st.SetReadDeadline(time.Time{})
	return c, st
}

// closedSoon reports whether the peer closed c within d (whatever it sent
// is discarded).
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// testRogueAgent: a rogue agent, before and after its hello, floods the
// gateway with yamux pings, SYNs, window updates and data for streams
// that do not exist, many unauthenticated connections on both
// transports, QUIC stream and handshake floods, bad control frames, and
// the log floods of sites messages and reconnects. The gateway closes
// each, its goroutines and RSS stay bounded, it logs each flood in a few
// lines, and it keeps serving the two honest agents on the same sessions.
func testRogueAgent(t *testing.T) {
	e, gw, honest := startWithHonestAgents(t)
	v := victim{name: "gateway", admin: e.adminAddr, p: gw}
	const floodPings = 100_000

	v.attack(t, "tcp/pings-before-hello", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		c := rogueTLS(t, e)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(tunneltest.Flood(floodPings, func(i int) []byte { return tunneltest.MuxHeader(muxPing, muxSYN, 0, uint32(i)) }))
		after() // nothing has read the gateway's answers
		if !closedSoon(c, 5*time.Second) {
			t.Error("100,000 pings before hello: the session is still open")
		}
	})
	v.attack(t, "tcp/pings-after-hello-unread", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := rogueSession(t, e, false)
		m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		m.c.Write(tunneltest.Flood(floodPings, func(i int) []byte { return tunneltest.MuxHeader(muxPing, muxSYN, 0, uint32(i)) }))
		after() // nothing has read the gateway's answers
		if !closedSoon(m.c, 5*time.Second) {
			t.Error("100,000 pings after hello: the session is still open")
		}
	})
	v.attack(t, "tcp/syn-flood", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		c := rogueTLS(t, e)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(tunneltest.Flood(10_000, func(i int) []byte { return tunneltest.MuxHeader(muxWindowUpdate, muxSYN, uint32(2*i+1), 0) }))
		after()
		if !closedSoon(c, 5*time.Second) {
			t.Error("10,000 SYNs: the session is still open")
		}
	})
	v.attack(t, "tcp/window-updates-known-stream", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := rogueSession(t, e, true)
		m.write(tunneltest.Flood(50_000, func(int) []byte { return tunneltest.MuxHeader(muxWindowUpdate, 0, 1, 1<<20) }))
	})
	v.attack(t, "tcp/window-updates-unknown-streams", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := rogueSession(t, e, false)
		m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		m.c.Write(tunneltest.Flood(50_000, func(i int) []byte { return tunneltest.MuxHeader(muxWindowUpdate, 0, uint32(1001+2*i), 1<<20) }))
		if !closedSoon(m.c, 5*time.Second) {
			t.Error("window updates for streams never opened: the session is still open")
		}
	})
	v.attack(t, "tcp/data-unknown-streams", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := rogueSession(t, e, false)
		m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		m.c.Write(tunneltest.Flood(2_000, func(i int) []byte {
			return append(tunneltest.MuxHeader(muxData, 0, uint32(1001+2*i), 1024), make([]byte, 1024)...)
		}))
		if !closedSoon(m.c, 5*time.Second) {
			t.Error("data for streams never opened: the session is still open")
		}
	})
	// Connections that finish the TLS handshake and say nothing: the
	// gateway keeps limits.unauthenticated_sessions (256) of them, each
	// with its yamux goroutines, until the hello timeout; the others are
	// closed at once.
	v.attack(t, "tcp/unauthenticated-flood", 4000, 96, func(t *testing.T, after func()) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []net.Conn
		var opened, closedAtOnce atomic.Int32
		for range 8 {
			wg.Go(func() {
				for range 150 {
					c, err := tls.Dial("tcp", e.tunnelAddr, &tls.Config{RootCAs: gatewayRoots(t, e), ServerName: "127.0.0.1", NextProtos: []string{alpn}})
					if err != nil {
						continue
					}
					opened.Add(1)
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, c := range conns {
			wg.Go(func() {
				if closedSoon(c, 500*time.Millisecond) {
					closedAtOnce.Add(1)
				}
			})
		}
		wg.Wait()
		after() // the connections over the limit are closed; the others held
		t.Logf("MEASURE %s: %d connections, %d closed at once", t.Name(), opened.Load(), closedAtOnce.Load())
		if closedAtOnce.Load() < opened.Load()-300 {
			t.Errorf("%d of %d silent connections were closed at once; want all but about 256", closedAtOnce.Load(), opened.Load())
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
	})
	quicConf := func() *tls.Config {
		return &tls.Config{RootCAs: gatewayRoots(t, e), ServerName: "127.0.0.1", NextProtos: []string{alpn}}
	}
	v.attack(t, "quic/unauthenticated-flood", 4000, 96, func(t *testing.T, after func()) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []*quic.Conn
		for range 8 {
			wg.Go(func() {
				for range 150 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					c, err := quic.DialAddr(ctx, e.tunnelAddr, quicConf(), &quic.Config{MaxIdleTimeout: 30 * time.Second})
					cancel()
					if err == nil {
						mu.Lock()
						conns = append(conns, c)
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		// The gateway closes those over the limit at once: well before
		// its 10 s hello timeout.
		closed := 0
		testwait.Until(3*time.Second, func() bool {
			closed = 0
			for _, c := range conns {
				if c.Context().Err() != nil {
					closed++
				}
			}
			return closed >= len(conns)-256
		})
		after()
		t.Logf("MEASURE %s: %d QUIC connections, %d closed at once", t.Name(), len(conns), closed)
		if closed < len(conns)-300 {
			t.Errorf("%d of %d silent QUIC connections were closed at once; want all but about 256", closed, len(conns))
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.CloseWithError(0, "")
			}
		})
	})
	// Handshakes that never finish, from a new connection id (and port)
	// each: connection-id churn and the amplification of spoofed Initials.
	v.attack(t, "quic/half-open-handshakes", 1500, attackRSSMiB, func(t *testing.T, after func()) {
		var wg sync.WaitGroup
		var got, sent, amplified atomic.Int64
		for range 1000 {
			udp, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c := &tunneltest.FirstDatagramOnly{PacketConn: udp}
			wg.Go(func() {
				defer c.Close()
				tr := &quic.Transport{Conn: c}
				defer tr.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				udpAddr, _ := net.ResolveUDPAddr("udp", e.tunnelAddr)
				if conn, err := tr.Dial(ctx, udpAddr, quicConf(), &quic.Config{}); err == nil {
					conn.CloseWithError(0, "")
				}
				got.Add(c.Got.Load())
				sent.Add(c.Sent.Load())
				if c.Got.Load() > 3*c.Sent.Load() {
					amplified.Add(1)
				}
			})
		}
		wg.Wait()
		after() // the gateway holds what it took until its handshake timeout
		t.Logf("MEASURE %s: 1000 Initials (%d bytes) got %d bytes back", t.Name(), sent.Load(), got.Load())
		if n := amplified.Load(); n > 0 {
			t.Errorf("the gateway sent %d of the addresses that never answered more than 3 × what it got from them", n)
		}
	})
	v.attack(t, "quic/stream-flood", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		c, _ := rogueQUIC(t, e, &quic.Config{EnableDatagrams: true})
		opened := 0
		for range 10_000 {
			if s, err := c.OpenStream(); err == nil {
				opened++
				s.Write([]byte("x"))
			}
			if _, err := c.OpenUniStream(); err == nil {
				opened++
			}
		}
		if opened > 0 {
			t.Errorf("the gateway gave credit for %d streams beyond the control stream", opened)
		}
		if c.ConnectionState().SupportsDatagrams.Remote {
			t.Error("the gateway offers QUIC datagrams")
		}
		for range 10_000 {
			if c.SendDatagram([]byte("flood")) == nil {
				t.Error("a datagram was sent to the gateway")
				break
			}
		}
	})

	// Bad control frames (finding 14), over both transports: each closes
	// the session at once.
	bad := []struct{ name, raw string }{
		{"zero-length", "\x00\x00\x00\x00"},
		{"oversized", "\x7f\xff\xff\xff"},
		{"garbage-json", string(controlFrame(`{"type":"sites","sites":[`))},
		{"goaway-wrong-types", string(controlFrame(`{"type":"goaway","reason":{"x":1}}`))},
	}
	for _, b := range bad {
		v.attack(t, "tcp/control/"+b.name, attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
			m := rogueSession(t, e, true)
			m.sendCtrl([]byte(b.raw))
			if !m.waitClosed(5 * time.Second) {
				t.Error("the session is still open 5 s after a bad control frame")
			}
		})
		v.attack(t, "quic/control/"+b.name, attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
			c, st := rogueQUIC(t, e, nil)
			st.Write([]byte(b.raw))
			select {
			case <-c.Context().Done():
			case <-time.After(5 * time.Second):
				t.Error("the session is still open 5 s after a bad control frame")
			}
		})
	}

	// The log floods of finding 15: lines are counted in the gateway's
	// output while each runs.
	lines := func(s string) int { return strings.Count(gw.out.String(), s) }
	v.attack(t, "log/sites-flood", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := rogueSession(t, e, true)
		before := lines("agent sites updated")
		for i := range 10_000 {
			m.sendCtrl(controlFrame(fmt.Sprintf(`{"type":"sites","sites":[{"name":"s%d"}]}`, i)))
		}
		var invalid strings.Builder
		for i := range 50_000 {
			fmt.Fprintf(&invalid, `{"name":"Bad_%d"},`, i)
		}
		m.sendCtrl(controlFrame(`{"type":"sites","sites":[` + strings.TrimSuffix(invalid.String(), ",") + `]}`))
		invalid.Reset()
		for i := range 1000 {
			fmt.Fprintf(&invalid, `{"name":"Bad_%d"},`, i)
		}
		m.sendCtrl(controlFrame(`{"type":"sites","sites":[` + invalid.String() + `{"name":"last"}]}`))
		testwait.Until(30*time.Second, func() bool { return strings.Contains(gw.out.String(), "invalid=1000") })
		updated := lines("agent sites updated") - before
		t.Logf("MEASURE %s: 10,000 sites messages: %d lines; 50,000 invalid names: %d lines; 1,000 invalid names: %d lines",
			t.Name(), updated, lines("more sites than limits.sites_per_broker"), lines("sites with invalid names"))
		if updated > 12 {
			t.Errorf("10,000 sites messages logged %d lines, want a handful", updated)
		}
		if n := lines("more sites than limits.sites_per_broker"); n != 1 {
			t.Errorf("a sites message with 50,000 names: %d lines, want 1", n)
		}
		if n := lines("sites with invalid names"); n != 1 {
			t.Errorf("a sites message with 1,000 invalid names: %d lines, want 1", n)
		}
	})
	v.attack(t, "log/reconnect-loop", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		before := lines("agent connected")
		for range 300 {
			m := rogueSession(t, e, false)
			m.c.Close()
		}
		connected := lines("agent connected") - before
		t.Logf("MEASURE %s: 300 sessions in a loop: %d lines", t.Name(), connected)
		if connected > 12 {
			t.Errorf("300 sessions logged %d 'agent connected' lines, want a handful", connected)
		}
	})

	// The gateway still has both honest sessions and serves through them.
	sameSessions(t, e, honest, "the rogue agent's attacks")
	e.mustServe("after the rogue agent")
	// Every flood's count is told within an interval (10 s).
	if _, ok := testwait.Until(15*time.Second, func() bool { return strings.Contains(gw.out.String(), "suppressed=") }); !ok {
		t.Error("no log line counts the lines held back")
	}
	recordOutput("gateway metrics after the rogue agent", scrapeMetrics(t, e.adminAddr))
}

// rogueGateway is a gateway written by hand: TLS with the tunnel's ALPN,
// yamux frames by hand, and a welcome for every hello.
type rogueGateway struct {
	ln       net.Listener
	sessions chan *rawMux
	wg       sync.WaitGroup
}

func startRogueGateway(t *testing.T, e *env) *rogueGateway {
	t.Helper()
	conf := e.serverTLS(t)
	conf.NextProtos = []string{alpn}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	g := &rogueGateway{ln: ln, sessions: make(chan *rawMux, 64)}
	g.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m := newRawMux(c)
			g.wg.Go(m.serve)
			g.wg.Go(func() {
				if msg, err := m.recvCtrl(10 * time.Second); err != nil || msg["type"] != "hello" {
					c.Close()
					return
				}
				m.sendCtrl(controlFrame(`{"type":"welcome","session_id":"rogue","gateway_version":"rogue"}`))
				select {
				case g.sessions <- m:
				default:
					c.Close()
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case m := <-g.sessions:
				m.c.Close()
				continue
			default:
			}
			break
		}
		g.wg.Wait()
	})
	return g
}

func (g *rogueGateway) next(t *testing.T) *rawMux {
	t.Helper()
	m := testwait.Recv(t, 30*time.Second, "an agent session", g.sessions)
	t.Cleanup(func() { m.c.Close() })
	return m
}

// get sends GET /rest/api/3/myself for site jira on a new stream id and
// returns the status line of the agent's answer.
func (m *rawMux) get(t *testing.T, id uint32) string {
	t.Helper()
	req := "GET /rest/api/3/myself HTTP/1.1\r\nHost: agent\r\nOx-Broker-Site: jira\r\nOx-Broker-Request-Id: rogue\r\nConnection: close\r\n\r\n"
	m.write(tunneltest.MuxHeader(muxWindowUpdate, muxSYN, id, 0))
	m.write(append(tunneltest.MuxHeader(muxData, muxFIN, id, uint32(len(req))), req...))
	b, err := m.waitStream(id, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatalf("the agent's answer: %v in %q", err, b)
	}
	resp.Body.Close()
	return resp.Status
}

// testRogueGateway: a rogue gateway floods a real agent (over TCP) with
// 100,000 pings it does not read, 10,000 SYNs, window updates and data
// for streams that do not exist, and a bad control frame. The agent
// closes each session, stays within bounded goroutines and RSS, and
// serves a request on its next session.
func testRogueGateway(t *testing.T) {
	e := newLowPortEnv(t)
	g := startRogueGateway(t, e)
	admin := lowPortAddr(t, false)
	agent := e.startAgent(agentOpts{transport: "tcp", address: g.ln.Addr().String(), serverName: "127.0.0.1", admin: admin, connections: 1})
	v := victim{name: "agent", admin: admin, p: agent}
	m := g.next(t)
	if status := m.get(t, 2); !strings.HasPrefix(status, "200") {
		t.Fatalf("before the attacks: %s", status)
	}
	closed := func(t *testing.T, m *rawMux, what string) {
		t.Helper()
		if !m.waitClosed(10 * time.Second) {
			t.Errorf("%s: the agent kept the session", what)
		}
	}
	v.attack(t, "syn-flood", 1024+attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m.write(tunneltest.Flood(10_000, func(i int) []byte { return tunneltest.MuxHeader(muxWindowUpdate, muxSYN, uint32(4+2*i), 0) }))
	})
	v.attack(t, "pings-unread", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m.hold.Lock() // stop reading
		m.write(tunneltest.Flood(100_000, func(i int) []byte { return tunneltest.MuxHeader(muxPing, muxSYN, 0, uint32(i)) }))
		after() // nothing has read the agent's answers
		m.hold.Unlock()
		closed(t, m, "100,000 pings")
	})
	v.attack(t, "window-updates-unknown-streams", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := g.next(t)
		m.write(tunneltest.Flood(50_000, func(i int) []byte { return tunneltest.MuxHeader(muxWindowUpdate, 0, uint32(100_000+2*i), 1<<20) }))
		closed(t, m, "window updates for streams never opened")
	})
	v.attack(t, "data-unknown-streams", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := g.next(t)
		m.write(tunneltest.Flood(2_000, func(i int) []byte {
			return append(tunneltest.MuxHeader(muxData, 0, uint32(100_000+2*i), 1024), make([]byte, 1024)...)
		}))
		closed(t, m, "data for streams never opened")
	})
	v.attack(t, "control/goaway-wrong-types", attackGoroutines, attackRSSMiB, func(t *testing.T, after func()) {
		m := g.next(t)
		m.sendCtrl(controlFrame(`{"type":"goaway","reason":["x"]}`))
		closed(t, m, "a goaway with the wrong field types")
	})
	m = g.next(t)
	if status := m.get(t, 2); !strings.HasPrefix(status, "200") {
		t.Errorf("after the attacks: %s, want 200", status)
	}
	recordOutput("agent metrics after the rogue gateway", scrapeMetrics(t, admin))
}
