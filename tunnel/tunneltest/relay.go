package tunneltest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/internal/freeport"
)

// Mode is what a Relay does with the traffic of one transport. Build one
// with Pass, Delay, Blackhole, Reset or Cut.
type Mode struct {
	kind  modeKind
	delay time.Duration
	cut   int64
}

type modeKind int

const (
	modePass modeKind = iota
	modeDelay
	modeBlackhole
	modeReset
	modeCut
)

// Pass forwards everything as it comes.
func Pass() Mode { return Mode{kind: modePass} }

// Delay forwards everything d late (latency, not a bandwidth limit: bytes
// and datagrams keep their order and are not slowed down otherwise).
func Delay(d time.Duration) Mode { return Mode{kind: modeDelay, delay: d} }

// Blackhole drops everything silently, in both directions, on connections
// already open and on new ones: nothing is closed, nothing arrives. The
// bytes dropped are gone when the mode changes back, as on a network that
// lost them; a TCP stream that lost bytes is broken for good.
func Blackhole() Mode { return Mode{kind: modeBlackhole} }

// Reset closes every TCP connection with a RST (SO_LINGER 0) on both sides
// when the mode is set, and every new one as soon as it is accepted. UDP has
// no connection to reset: its datagrams are dropped, as in Blackhole.
func Reset() Mode { return Mode{kind: modeReset} }

// Cut lets n more bytes through on each TCP connection (both directions
// counted together, from the moment the mode is set, or from its start for
// a new connection), then closes it on both sides. A UDP peer is let send
// and receive n bytes of datagrams, then everything of it is dropped.
func Cut(n int64) Mode { return Mode{kind: modeCut, cut: n} }

func (m Mode) String() string {
	switch m.kind {
	case modeDelay:
		return "delay(" + m.delay.String() + ")"
	case modeBlackhole:
		return "blackhole"
	case modeReset:
		return "reset"
	case modeCut:
		return "cut(" + strconv.FormatInt(m.cut, 10) + ")"
	}
	return "pass"
}

// modeState is a Mode and the generation it was set in: a connection's cut
// budget starts again with each new generation.
type modeState struct {
	Mode
	gen uint64
}

// udpIdle is how long a UDP peer may stay silent in both directions before
// the relay forgets it and closes its upstream socket.
const udpIdle = 30 * time.Second

// RelayStats counts what a Relay has seen.
type RelayStats struct {
	TCPAccepted int64 // TCP connections accepted
	TCPOpen     int   // TCP connections open now
	TCPResets   int64 // TCP connections closed with a RST
	UDPPeers    int   // client addresses with an upstream socket now
	UDPPeersAll int64 // client addresses seen
	Dropped     int64 // bytes (TCP) and datagram bytes (UDP) dropped
}

// Relay is a fault-injecting relay on loopback for both transports of the
// tunnel: it listens for TCP and UDP on one port, as the gateway does, and
// forwards TCP connections and UDP datagrams to upstream. What it does with
// the traffic of each transport is a Mode that can be changed at any time,
// from any goroutine. A UDP client gets its own upstream socket per
// address, so that the upstream sees one peer per client, as without the
// relay.
type Relay struct {
	upstream string
	upUDP    *net.UDPAddr
	tcpLn    *net.TCPListener
	udpLn    *net.UDPConn

	tcpMode atomic.Pointer[modeState]
	udpMode atomic.Pointer[modeState]

	mu     sync.Mutex // guards the fields below, and every mode change
	gen    uint64
	conns  map[*relayConn]struct{}
	peers  map[string]*udpPeer
	timers map[*time.Timer]struct{} // delayed datagrams not yet sent
	closed bool

	accepted, resets, peersAll, dropped atomic.Int64

	wg sync.WaitGroup // every goroutine of the relay
}

// NewRelay listens on 127.0.0.1 (TCP and UDP, same port) and relays to
// upstream (host:port; TCP and UDP), in Pass mode.
func NewRelay(upstream string) (*Relay, error) {
	upUDP, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, fmt.Errorf("relay upstream %q: %w", upstream, err)
	}
	r := &Relay{
		upstream: upstream,
		upUDP:    upUDP,
		conns:    make(map[*relayConn]struct{}),
		peers:    make(map[string]*udpPeer),
		timers:   make(map[*time.Timer]struct{}),
	}
	if r.tcpLn, r.udpLn, err = freeport.ListenTCPUDP(); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r.tcpMode.Store(&modeState{Mode: Pass()})
	r.udpMode.Store(&modeState{Mode: Pass()})
	r.wg.Add(2)
	go r.acceptTCP()
	go r.readUDP()
	return r, nil
}

// Addr is the relay's address, host:port, for TCP and UDP alike.
func (r *Relay) Addr() string { return r.tcpLn.Addr().String() }

// Set sets the mode of both transports.
func (r *Relay) Set(m Mode) {
	r.SetTCP(m)
	r.SetUDP(m)
}

// SetTCP sets the mode of TCP connections, open and new. Setting Reset
// resets every open connection before SetTCP returns.
func (r *Relay) SetTCP(m Mode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(&r.tcpMode, m)
	if m.kind == modeReset {
		for c := range r.conns {
			c.close(true)
		}
	}
}

// SetUDP sets the mode of UDP datagrams.
func (r *Relay) SetUDP(m Mode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(&r.udpMode, m)
}

// setLocked puts m in force as the mode's next generation; r.mu is held.
func (r *Relay) setLocked(mode *atomic.Pointer[modeState], m Mode) {
	r.gen++
	mode.Store(&modeState{Mode: m, gen: r.gen})
}

// TCPMode and UDPMode return the modes in force.
func (r *Relay) TCPMode() Mode { return r.tcpMode.Load().Mode }
func (r *Relay) UDPMode() Mode { return r.udpMode.Load().Mode }

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStats{
		TCPAccepted: r.accepted.Load(),
		TCPOpen:     r.openTCP(),
		TCPResets:   r.resets.Load(),
		UDPPeers:    len(r.peers),
		UDPPeersAll: r.peersAll.Load(),
		Dropped:     r.dropped.Load(),
	}
}

// openTCP counts relayed connections not yet closed; r.mu is held. A
// connection leaves r.conns only once its pipes end, a little after its
// peers saw it closed, so counting the map would race with them.
func (r *Relay) openTCP() int {
	n := 0
	for c := range r.conns {
		select {
		case <-c.done:
		default:
			n++
		}
	}
	return n
}

// Close stops the relay, closes every connection and upstream socket, and
// returns once every goroutine of the relay has ended.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	r.tcpLn.Close()
	r.udpLn.Close()
	for c := range r.conns {
		c.close(false)
	}
	for _, p := range r.peers {
		p.up.Close()
	}
	for t := range r.timers {
		if t.Stop() {
			r.wg.Done() // the datagram will not be sent
		}
	}
	clear(r.timers)
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// --- TCP ---

func (r *Relay) acceptTCP() {
	defer r.wg.Done()
	for {
		c, err := r.tcpLn.AcceptTCP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		r.accepted.Add(1)
		if r.tcpMode.Load().kind == modeReset {
			c.SetLinger(0)
			c.Close()
			r.resets.Add(1)
			continue
		}
		r.wg.Add(1)
		go r.serveTCP(c)
	}
}

// relayConn is one relayed TCP connection: client is the accepted side, up
// the connection to upstream.
type relayConn struct {
	r          *Relay
	client, up *net.TCPConn
	done       chan struct{} // closed by close
	once       sync.Once

	mu   sync.Mutex // guards gen and left
	gen  uint64     // mode generation the budget belongs to
	left int64      // bytes left before a cut
}

func (r *Relay) serveTCP(client *net.TCPConn) {
	defer r.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	uc, err := d.Dial("tcp", r.upstream)
	if err != nil {
		client.SetLinger(0)
		client.Close()
		return
	}
	c := &relayConn{r: r, client: client, up: uc.(*net.TCPConn), done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.close(false)
		return
	}
	r.conns[c] = struct{}{}
	if r.tcpMode.Load().kind == modeReset { // set while we dialled
		c.close(true)
	}
	r.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); c.pipe(c.up, c.client) }()
	go func() { defer pipes.Done(); c.pipe(c.client, c.up) }()
	pipes.Wait()
	c.close(false)
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// close closes both sides, with a RST if reset; the first call wins.
func (c *relayConn) close(reset bool) {
	c.once.Do(func() {
		if reset {
			c.client.SetLinger(0)
			c.up.SetLinger(0)
			c.r.resets.Add(1)
		}
		close(c.done) // before the sockets: whoever sees them closed sees done
		c.client.Close()
		c.up.Close()
	})
}

// take charges n bytes to the connection's cut budget under st and returns
// how many may pass and whether the connection must be cut after them.
func (c *relayConn) take(st *modeState, n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != st.gen {
		c.gen, c.left = st.gen, st.cut
	}
	k := int64(n)
	if k >= c.left {
		k = c.left
		c.left = 0
		return int(k), true
	}
	c.left -= k
	return n, false
}

// chunk is data read from one side, due for the other at a time.
type chunk struct {
	b   []byte
	due time.Time
	cut bool // close the connection once b is written
	eof bool // the source ended: half-close the destination
}

// pipe moves src to dst through a queue, so that a delay holds bytes back
// without slowing down the reading of more. EOF on src half-closes dst,
// unless the mode is Blackhole: then the FIN is lost like the bytes.
func (c *relayConn) pipe(dst, src *net.TCPConn) {
	q := make(chan chunk, 256)
	writerDone := make(chan struct{})
	go func() { // the writer ends with the queue or the connection
		defer close(writerDone)
		for ch := range q {
			if wait := time.Until(ch.due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			if len(ch.b) > 0 {
				if _, err := dst.Write(ch.b); err != nil {
					c.close(false)
					return
				}
			}
			switch {
			case ch.cut:
				c.close(false)
				return
			case ch.eof:
				dst.CloseWrite()
				return
			}
		}
	}()
	defer func() {
		close(q)
		<-writerDone
	}()
	enqueue := func(ch chunk) bool {
		select {
		case q <- ch:
			return true
		case <-c.done:
			return false
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		st := c.r.tcpMode.Load()
		if n > 0 {
			ch := chunk{due: time.Now()}
			switch st.kind {
			case modeBlackhole, modeReset:
				c.r.dropped.Add(int64(n))
				n = 0
			case modeDelay:
				ch.due = ch.due.Add(st.delay)
			case modeCut:
				k, cut := c.take(st, n)
				c.r.dropped.Add(int64(n - k))
				n, ch.cut = k, cut
			}
			if n > 0 || ch.cut {
				ch.b = append([]byte(nil), buf[:n]...)
				if !enqueue(ch) || ch.cut {
					return
				}
			}
		}
		if err != nil {
			if st.kind == modeBlackhole {
				return // the end is lost too; the peer finds out on its own
			}
			if !errors.Is(err, io.EOF) {
				c.close(false)
				return
			}
			due := time.Now()
			if st.kind == modeDelay {
				due = due.Add(st.delay)
			}
			enqueue(chunk{due: due, eof: true})
			return
		}
	}
}

// --- UDP ---

// udpPeer is one client address and its own socket to upstream.
type udpPeer struct {
	client *net.UDPAddr
	up     *net.UDPConn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way

	mu   sync.Mutex // guards gen and left
	gen  uint64
	left int64
}

func (r *Relay) readUDP() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.udpLn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		p := r.peer(from)
		if p == nil {
			continue
		}
		r.sendUDP(p, buf[:n], func(b []byte) { p.up.Write(b) })
	}
}

// peer returns the peer of addr, creating it and its upstream socket.
func (r *Relay) peer(addr *net.UDPAddr) *udpPeer {
	key := addr.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if p := r.peers[key]; p != nil {
		return p
	}
	up, err := net.DialUDP("udp", nil, r.upUDP)
	if err != nil {
		return nil
	}
	p := &udpPeer{client: addr, up: up}
	p.last.Store(time.Now().UnixNano())
	r.peers[key] = p
	r.peersAll.Add(1)
	r.wg.Add(1)
	go r.readUpstream(key, p)
	return p
}

// readUpstream relays upstream's datagrams for p back to its client until
// the socket is closed or the peer has been idle for udpIdle.
func (r *Relay) readUpstream(key string, p *udpPeer) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		if r.peers[key] == p {
			delete(r.peers, key)
		}
		r.mu.Unlock()
		p.up.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		p.up.SetReadDeadline(time.Now().Add(udpIdle / 4))
		n, err := p.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(time.Unix(0, p.last.Load())) > udpIdle {
					return
				}
				continue
			}
			// On Linux a connected UDP socket reports an ICMP port
			// unreachable as ECONNREFUSED on the next read: the upstream
			// is down for now, not the peer gone.
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.sendUDP(p, buf[:n], func(b []byte) { r.udpLn.WriteToUDP(b, p.client) })
	}
}

// sendUDP applies the UDP mode to one datagram and sends it with send.
func (r *Relay) sendUDP(p *udpPeer, b []byte, send func([]byte)) {
	p.last.Store(time.Now().UnixNano())
	st := r.udpMode.Load()
	switch st.kind {
	case modeBlackhole, modeReset:
		r.dropped.Add(int64(len(b)))
		return
	case modeCut:
		p.mu.Lock()
		if p.gen != st.gen {
			p.gen, p.left = st.gen, st.cut
		}
		ok := int64(len(b)) <= p.left
		if ok {
			p.left -= int64(len(b))
		} else {
			p.left = 0 // a datagram is not split: the cut starts here
		}
		p.mu.Unlock()
		if !ok {
			r.dropped.Add(int64(len(b)))
			return
		}
	case modeDelay:
		b = append([]byte(nil), b...)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return
		}
		r.wg.Add(1)
		var t *time.Timer
		t = time.AfterFunc(st.delay, func() {
			defer r.wg.Done()
			r.mu.Lock()
			_, pending := r.timers[t]
			delete(r.timers, t)
			r.mu.Unlock()
			if pending {
				send(b)
			}
		})
		r.timers[t] = struct{}{}
		return
	}
	send(b)
}
