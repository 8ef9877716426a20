package tunneltest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/internal/freeport"
	"github.com/oxsecurity/oxbroker/internal/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServers listens on one loopback port for TCP and UDP and echoes
// everything back; a UDP answer is prefixed with the sender's address, so
// that tests can tell the relay's upstream sockets apart.
func echoServers(t *testing.T) string {
	t.Helper()
	tl, ul, err := freeport.ListenTCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards conns
	var conns []net.Conn
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := ul.ReadFromUDP(buf)
			if err != nil {
				return
			}
			ul.WriteToUDP(append([]byte(from.String()+"|"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		ul.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return tl.Addr().String()
}

func newTestRelay(t *testing.T) *Relay {
	t.Helper()
	r, err := NewRelay(echoServers(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// relayWithConn returns a relay in Pass and a TCP connection through it
// that has carried a round trip: for the tests of what a mode does to a
// connection already open.
func relayWithConn(t *testing.T) (*Relay, *net.TCPConn) {
	t.Helper()
	r := newTestRelay(t)
	c := dialTCP(t, r.Addr())
	if _, err := roundTrip(c, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return r, c
}

// roundTrip writes msg and reads len(msg) bytes back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) ([]byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	n, err := io.ReadFull(c, got)
	return got[:n], err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRelayTCPPass(t *testing.T) {
	r := newTestRelay(t)
	c := dialTCP(t, r.Addr())
	msg := bytes.Repeat([]byte("0123456789"), 50_000) // 500 kB, several reads
	got, err := roundTrip(c, msg, 5*time.Second)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("pass: got %d bytes (equal %v), err %v; want the %d bytes back", len(got), bytes.Equal(got, msg), err, len(msg))
	}
	// EOF travels as a half-close: the echo server answers it by closing.
	c.CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after CloseWrite: got %d bytes, err %v; want EOF", n, err)
	}
	if s := r.Stats(); s.TCPAccepted != 1 {
		t.Fatalf("stats: got %+v, want one accepted connection", s)
	}
}

func TestRelayTCPDelay(t *testing.T) {
	r := newTestRelay(t)
	c := dialTCP(t, r.Addr())
	r.SetTCP(Delay(150 * time.Millisecond))
	start := time.Now()
	got, err := roundTrip(c, []byte("ping"), 5*time.Second)
	rtt := time.Since(start)
	if err != nil || string(got) != "ping" {
		t.Fatalf("delay: got %q, %v", got, err)
	}
	// Both directions are delayed: at least 2 × 150 ms.
	if rtt < 300*time.Millisecond || rtt > 3*time.Second {
		t.Fatalf("delay: round trip %s, want 300 ms … 3 s", rtt)
	}
	if r.TCPMode().String() != "delay(150ms)" {
		t.Fatalf("mode: got %s", r.TCPMode())
	}
	r.SetTCP(Pass())
	start = time.Now()
	if _, err := roundTrip(c, []byte("pong"), 5*time.Second); err != nil || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("pass after delay: %v after %s", err, time.Since(start))
	}
}

func TestRelayTCPBlackhole(t *testing.T) {
	r, c := relayWithConn(t)
	r.SetTCP(Blackhole())
	// Silence, both on the open connection and on a new one; nothing is
	// closed either.
	fresh := dialTCP(t, r.Addr())
	for _, conn := range []net.Conn{c, fresh} {
		if got, err := roundTrip(conn, []byte("lost"), 300*time.Millisecond); !isTimeout(err) {
			t.Fatalf("blackhole: got %q, %v; want a timeout", got, err)
		}
	}
	if s := r.Stats(); s.Dropped < 8 {
		t.Fatalf("stats: got %+v, want at least 8 bytes dropped", s)
	}
	// Back to pass: new bytes flow; the dropped ones are gone.
	r.SetTCP(Pass())
	got, err := roundTrip(c, []byte("after"), 5*time.Second)
	if err != nil || string(got) != "after" {
		t.Fatalf("after the blackhole: got %q, %v; want %q", got, err, "after")
	}
}

func TestRelayTCPReset(t *testing.T) {
	r, c := relayWithConn(t)
	r.SetTCP(Reset())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection after Reset: got %v, want ECONNRESET", err)
	}
	// New connections are reset at once while the mode holds (the RST
	// may even come before connect returns).
	fresh, err := net.Dial("tcp", r.Addr())
	if err == nil {
		defer fresh.Close()
		fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = fresh.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("new connection under Reset: got %v, want ECONNRESET", err)
	}
	if s := r.Stats(); s.TCPResets != 2 || s.TCPOpen != 0 {
		t.Fatalf("stats: got %+v, want 2 resets and nothing open", s)
	}
	r.SetTCP(Pass())
	if _, err := roundTrip(dialTCP(t, r.Addr()), []byte("again"), 5*time.Second); err != nil {
		t.Fatalf("pass after reset: %v", err)
	}
}

func TestRelayTCPCut(t *testing.T) {
	r, c := relayWithConn(t)
	// 100 bytes up count, then 50 of the echo: the connection is cut there.
	r.SetTCP(Cut(150))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(bytes.Repeat([]byte("x"), 100))
	got, err := io.ReadAll(c)
	if len(got) != 50 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("cut(150) after 100 bytes up: got %d bytes back, err %v; want 50 and the end", len(got), err)
	}
	// A new connection gets its own budget.
	fresh := dialTCP(t, r.Addr())
	if got, err := roundTrip(fresh, []byte("0123456789"), 5*time.Second); err != nil || len(got) != 10 {
		t.Fatalf("new connection under cut(150): got %q, %v", got, err)
	}
}

func udpExchange(c *net.UDPConn, msg string, timeout time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelayUDP(t *testing.T) {
	r := newTestRelay(t)
	a, b := dialUDP(t, r.Addr()), dialUDP(t, r.Addr())
	ra, err := udpExchange(a, "one", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := udpExchange(b, "two", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Each client has its own upstream socket: upstream saw two senders.
	fromA, msgA, _ := bytes.Cut([]byte(ra), []byte("|"))
	fromB, msgB, _ := bytes.Cut([]byte(rb), []byte("|"))
	if string(msgA) != "one" || string(msgB) != "two" || bytes.Equal(fromA, fromB) {
		t.Fatalf("pass: got %q and %q, want one and two from different upstream sockets", ra, rb)
	}
	if s := r.Stats(); s.UDPPeers != 2 {
		t.Fatalf("stats: got %+v, want 2 UDP peers", s)
	}

	r.SetUDP(Delay(150 * time.Millisecond))
	start := time.Now()
	if _, err := udpExchange(a, "slow", 5*time.Second); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("delay: %v after %s, want ≥ 300 ms", err, time.Since(start))
	}

	for _, m := range []Mode{Blackhole(), Reset()} {
		r.SetUDP(m)
		if got, err := udpExchange(a, "lost", 300*time.Millisecond); !isTimeout(err) {
			t.Fatalf("%s: got %q, %v; want a timeout", m, got, err)
		}
	}

	// Cut: the budget counts both ways. "abc" up and "127.0.0.1:port|abc"
	// down (3 + 19 bytes) fit in 30; the next answer does not.
	r.SetUDP(Cut(30))
	if _, err := udpExchange(a, "abc", 5*time.Second); err != nil {
		t.Fatalf("cut(30), first datagram: %v", err)
	}
	if got, err := udpExchange(a, "abc", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("cut(30) spent: got %q, %v; want a timeout", got, err)
	}
	r.SetUDP(Pass())
	if _, err := udpExchange(a, "back", 5*time.Second); err != nil {
		t.Fatalf("pass after cut: %v", err)
	}
}

// TestRelayConcurrentUse changes modes while traffic flows on both
// transports, for the race detector, then closes the relay with
// connections open and delayed datagrams pending: Close must wait for
// every goroutine (goleak checks in TestMain).
func TestRelayConcurrentUse(t *testing.T) {
	r, err := NewRelay(echoServers(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc, err := net.Dial("tcp", r.Addr())
			if err != nil {
				return
			}
			defer tc.Close()
			uc := dialUDPNoCleanup(r.Addr())
			if uc != nil {
				defer uc.Close()
			}
			buf := make([]byte, 1024)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tc.SetDeadline(time.Now().Add(50 * time.Millisecond))
				tc.Write([]byte{byte(i)})
				tc.Read(buf)
				if uc != nil {
					uc.SetDeadline(time.Now().Add(50 * time.Millisecond))
					uc.Write([]byte{byte(i)})
					uc.Read(buf)
				}
			}
		}()
	}
	modes := []Mode{Pass(), Delay(20 * time.Millisecond), Blackhole(), Cut(10), Reset(), Delay(time.Hour), Pass()}
	for i := range 40 {
		m := modes[i%len(modes)]
		if i%2 == 0 {
			r.SetTCP(m)
		} else {
			r.SetUDP(m)
		}
		_ = r.Stats()
		time.Sleep(10 * time.Millisecond)
	}
	r.SetUDP(Delay(time.Hour)) // datagrams pending when Close comes
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	testwait.Recv(t, 5*time.Second, "Close to return", done)
	close(stop)
	wg.Wait()
	r.Close() // twice is fine
}

func dialUDPNoCleanup(addr string) *net.UDPConn {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return nil
	}
	return c
}
