package streamhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
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
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no connection accepted within 5 s", what)
		return nil
	}
}

// quiet waits a moment and fails if another connection is accepted. A
// negative can only be checked by waiting.
func quiet(t *testing.T, conns chan net.Conn, what string) {
	t.Helper()
	select {
	case c := <-conns:
		c.Close()
		t.Fatalf("%s: got one more accepted connection, want none", what)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStreamListenerLimit(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			agentSide, gatewaySide := sessiontest.SessionPair(t, tr, tunnel.Options{})
			const limit = 3
			l := newStreamListener(agentSide, limit)
			conns, errc := acceptLoop(l)

			// The gateway opens more streams than the limit. A QUIC
			// stream reaches the peer with its first byte, so each
			// carries one. Opening may block (the peer has not taken the
			// earlier ones), so it runs beside the test.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opener := make(chan error, 1)
			go func() {
				for range limit + 5 {
					st, err := gatewaySide.OpenStream(ctx)
					if err != nil {
						opener <- err
						return
					}
					defer st.Close()
					if _, err := st.Write([]byte{'x'}); err != nil {
						opener <- err
						return
					}
				}
				opener <- nil
			}()

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
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept after Close: got %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Accept still blocked 5 s after Close")
			}
			gatewaySide.Close()
			<-opener
		})
	}
}

func TestStreamListenerClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tests := []struct {
				name string
				end  func(l *streamListener, agentSide, gatewaySide tunnel.Session)
			}{
				{"listener closed", func(l *streamListener, _, _ tunnel.Session) { l.Close() }},
				{"session closed", func(_ *streamListener, agentSide, _ tunnel.Session) { agentSide.Close() }},
				{"peer closed the session", func(_ *streamListener, _, gatewaySide tunnel.Session) { gatewaySide.Close() }},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					agentSide, gatewaySide := sessiontest.SessionPair(t, tr, tunnel.Options{})
					l := newStreamListener(agentSide, 2)
					if got, want := l.Addr(), agentSide.LocalAddr(); got.String() != want.String() {
						t.Errorf("Addr: got %s, want the session's %s", got, want)
					}
					_, errc := acceptLoop(l) // blocked in AcceptStream: no stream is opened
					time.Sleep(50 * time.Millisecond)
					tt.end(l, agentSide, gatewaySide)
					select {
					case err := <-errc:
						if !errors.Is(err, net.ErrClosed) {
							t.Errorf("Accept: got %v, want net.ErrClosed", err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("Accept still blocked 10 s later")
					}
					l.Close()
				})
			}
		})
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
			l := newStreamListener(agentSide, 1)
			defer l.Close()
			conns, _ := acceptLoop(l)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			open := func() net.Conn {
				st, err := gatewaySide.OpenStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Write([]byte{'x'}); err != nil {
					t.Fatal(err)
				}
				return st
			}
			first := open()
			defer first.Close()
			busy := receive(t, conns, "first stream")
			second := open()
			defer second.Close()
			quiet(t, conns, "at the limit")

			time.Sleep(3 * opts.IdleTimeout) // a slow request in flight
			select {
			case <-agentSide.Done():
				t.Fatalf("the session ended while a stream waited %s for a slot", 3*opts.IdleTimeout)
			default:
			}
			busy.Close()
			c := receive(t, conns, "the queued stream after a slot freed")
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("queued stream: %v", err)
			}
			c.Close()
		})
	}
}
