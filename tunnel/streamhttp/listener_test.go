package streamhttp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

var transports = tunnel.Transports

// acceptLoop accepts from l until it fails, sending each connection on
// the returned channel and the final error on errc.
func acceptLoop(l net.Listener) (conns chan net.Conn, errc chan error) {
	conns, errc = make(chan net.Conn, 64), make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			conns <- c
		}
	}()
	return conns, errc
}

func receive(t *testing.T, conns chan net.Conn, what string) net.Conn {
	t.Helper()
	return testwait.Recv(t, 5*time.Second, "a connection accepted "+what, conns)
}

// openStreams opens n streams of s beside the test, as a gateway does,
// each with one byte written (a QUIC stream reaches the peer with its
// first byte), and holds them open until ctx ends or the session fails.
// Opening may block: the peer takes streams only up to its limit.
func openStreams(ctx context.Context, s tunnel.Session, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for range n {
			var st net.Conn
			if st, err = s.OpenStream(ctx); err != nil {
				break
			}
			defer st.Close()
			go st.Write([]byte{'x'}) // net.Pipe waits for the reader
		}
		if err == nil {
			<-ctx.Done()
		}
		done <- err
	}()
	return done
}

// quiet fails if another connection is accepted once everything in the
// synctest bubble has run as far as it can.
func quiet(t *testing.T, conns chan net.Conn, what string) {
	t.Helper()
	synctest.Wait()
	select {
	case c := <-conns:
		c.Close()
		t.Fatalf("%s: got one more accepted connection, want none", what)
	default:
	}
}

// TestStreamListenerLimit: the listener serves at most its limit of
// streams at once; each closed one lets one more through. It runs on
// sessions in memory, in a synctest bubble, to show that no more come.
func TestStreamListenerLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		agentSide, gatewaySide := sessiontest.MemPair()
		defer agentSide.Close()
		const limit = 3
		l := streamhttp.Listener(agentSide, limit)
		conns, errc := acceptLoop(l)

		// The gateway opens more streams than the limit. Opening blocks
		// (the peer has not taken the earlier ones), so it runs beside
		// the test.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opener := openStreams(ctx, gatewaySide, limit+5)

		var accepted []net.Conn
		for i := range limit {
			c := receive(t, conns, "within the limit")
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
				t.Fatalf("accepted stream %d: read %q, %v; want x", i, buf, err)
			}
			accepted = append(accepted, c)
		}
		quiet(t, conns, "at the limit")

		// Closing one gives its slot to the next stream, once.
		accepted[0].Close()
		accepted[0].Close() // a second Close must not free a second slot
		accepted = append(accepted[1:], receive(t, conns, "after one closed"))
		quiet(t, conns, "at the limit again")

		// All closed: the rest come through, up to the limit.
		for _, c := range accepted {
			c.Close()
		}
		for range limit {
			receive(t, conns, "after all closed")
		}
		quiet(t, conns, "at the limit a third time")

		// Close unblocks the Accept that waits for a slot.
		l.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: got %v, want net.ErrClosed", err)
		}
		gatewaySide.Close()
		<-opener
	})
}

// TestStreamListenerLimitOverTransports: over each real transport, the
// limit lets that many streams through, and one more once one closes.
// (That no more come is shown in memory: TestStreamListenerLimit.)
func TestStreamListenerLimitOverTransports(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			agentSide, gatewaySide := sessiontest.SessionPair(t, tr, tunnel.Options{})
			const limit = 3
			l := streamhttp.Listener(agentSide, limit)
			defer l.Close()
			conns, _ := acceptLoop(l)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opener := openStreams(ctx, gatewaySide, limit+1)
			var accepted []net.Conn
			for range limit {
				accepted = append(accepted, receive(t, conns, "within the limit"))
			}
			accepted[0].Close()
			receive(t, conns, "after one closed")
			cancel()
			gatewaySide.Close()
			<-opener
		})
	}
}

// TestStreamListenerClose: Accept, blocked for want of a stream, returns
// net.ErrClosed when the listener or either side of the session closes;
// in memory it is surely blocked (synctest.Wait), over the transports
// it may be.
func TestStreamListenerClose(t *testing.T) {
	tests := []struct {
		name string
		end  func(l net.Listener, agentSide, gatewaySide tunnel.Session)
	}{
		{"listener closed", func(l net.Listener, _, _ tunnel.Session) { l.Close() }},
		{"session closed", func(_ net.Listener, agentSide, _ tunnel.Session) { agentSide.Close() }},
		{"peer closed the session", func(_ net.Listener, _, gatewaySide tunnel.Session) { gatewaySide.Close() }},
	}
	check := func(t *testing.T, agentSide, gatewaySide tunnel.Session, end func(l net.Listener, agentSide, gatewaySide tunnel.Session), blocked func()) {
		l := streamhttp.Listener(agentSide, 2)
		defer l.Close()
		if got, want := l.Addr(), agentSide.LocalAddr(); got.String() != want.String() {
			t.Errorf("Addr: got %s, want the session's %s", got, want)
		}
		_, errc := acceptLoop(l) // blocked in AcceptStream: no stream is opened
		blocked()
		end(l, agentSide, gatewaySide)
		if err := testwait.Recv(t, 10*time.Second, "Accept to return", errc); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept: got %v, want net.ErrClosed", err)
		}
	}
	for _, tt := range tests {
		t.Run("memory/"+tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				agentSide, gatewaySide := sessiontest.MemPair()
				defer agentSide.Close()
				check(t, agentSide, gatewaySide, tt.end, synctest.Wait)
			})
		})
		for _, tr := range transports {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				agentSide, gatewaySide := sessiontest.SessionPair(t, tr, tunnel.Options{})
				check(t, agentSide, gatewaySide, tt.end, func() {})
			})
		}
	}
}

// TestStreamsQueueBeyondLimit: streams the agent does not take yet (it is
// at its limit) wait in the transport, however long the requests in
// flight take, and are served once a slot frees. The idle timeout is cut
// to 500 ms to make "long" short.
func TestStreamsQueueBeyondLimit(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			opts := tunnel.Options{KeepAlive: 100 * time.Millisecond, IdleTimeout: 500 * time.Millisecond}
			agentSide, gatewaySide := sessiontest.SessionPair(t, tr, opts)
			l := streamhttp.Listener(agentSide, 1)
			defer l.Close()
			conns, _ := acceptLoop(l)

			open := func() {
				if _, err := tunneltest.Open(t, gatewaySide.OpenStream).Write([]byte{'x'}); err != nil {
					t.Fatal(err)
				}
			}
			open()
			busy := receive(t, conns, "first stream")
			open()

			// A slow request in flight: the queued stream and its session
			// outlive several idle timeouts.
			time.Sleep(3 * opts.IdleTimeout)
			busy.Close()
			c := receive(t, conns, "the queued stream after a slot freed")
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("queued stream: %v", err)
			}
			c.Close()
			select {
			case <-agentSide.Done():
				t.Fatalf("the session ended while a stream waited %s for a slot", 3*opts.IdleTimeout)
			default:
			}
		})
	}
}
