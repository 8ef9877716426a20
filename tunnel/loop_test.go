package tunnel

import (
	"errors"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// TestControlLoop: each side's loop hands sites and goaway to its
// handlers in the order they were sent, delivers the first goaway, ignores
// unknown types, and tells the peer's half-close (an acknowledgement)
// from a bad frame, which closes the session.
func TestControlLoop(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server, cc, sc := handshake(t, tr, Options{})
			var order []string
			loop := StartControl(server, sc, Handlers{
				GoAway: func(m GoAway) { order = append(order, "goaway:"+m.Reason) },
				Sites:  func(m Sites) { order = append(order, "sites:"+m.Sites[0].Name) },
			})
			if _, err := cc.conn.Write(frame(t, `{"type":"from-the-future"}`)); err != nil {
				t.Fatal(err)
			}
			cc.Send(Sites{Sites: []SiteInfo{{Name: "a"}}})
			cc.Send(GoAway{Reason: "first"})
			cc.Send(GoAway{Reason: "second"})
			cc.Send(Sites{Sites: []SiteInfo{{Name: "b"}}})
			if g := testwait.Recv(t, 10*time.Second, "a goaway delivered", loop.GoAway()); g.Reason != "first" {
				t.Errorf("GoAway: got %q, want the first", g.Reason)
			}
			cc.CloseWrite()
			testwait.Recv(t, 10*time.Second, "the half-close read", loop.Acknowledged())
			if err := loop.Err(); err != nil || loop.BadFrame() {
				t.Errorf("after a half-close: Err %v, BadFrame %v; want nil, false", err, loop.BadFrame())
			}
			want := []string{"sites:a", "goaway:first", "goaway:second", "sites:b"}
			if len(order) != len(want) {
				t.Fatalf("handlers saw %v, want %v", order, want)
			}
			for i := range want {
				if order[i] != want[i] {
					t.Fatalf("handlers saw %v, want %v", order, want)
				}
			}
			select {
			case <-server.Done():
				t.Error("a half-close closed the session")
			default:
			}
			loop.Wait()
			_ = client
		})
	}
}

// TestControlLoopBadFrame: a bad frame calls BadFrame, then closes the
// session; it is no acknowledgement.
func TestControlLoopBadFrame(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			_, server, cc, sc := handshake(t, tr, Options{})
			var seen error
			loop := StartControl(server, sc, Handlers{BadFrame: func(err error) { seen = err }})
			// The write may report the session's end: over yamux it waits
			// for the send loop, and the gateway closes as soon as it reads.
			cc.conn.Write(frame(t, `{"type":"goaway","reason":7}`))
			testwait.Recv(t, 10*time.Second, "the session to close after a bad frame", server.Done())
			loop.Wait()
			if !loop.BadFrame() || !errors.Is(seen, ErrProtocol) {
				t.Errorf("BadFrame %v, handler saw %v; want true and ErrProtocol", loop.BadFrame(), seen)
			}
			select {
			case <-loop.Acknowledged():
				t.Error("a bad frame counted as an acknowledgement")
			default:
			}
		})
	}
}

// frame is one control frame of payload, written by hand.
func frame(t *testing.T, payload string) []byte {
	t.Helper()
	b, err := AppendFrame(nil, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
