package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakes starts a Gateway with answer and returns it with a dial to it.
func fakes(t *testing.T, tr string, answer func(int, tunnel.Hello) tunnel.Message) (*Gateway, func() tunnel.Session) {
	t.Helper()
	server, client := tlsConfigs(t)
	g, err := StartGateway(t, GatewayOptions{TLS: server, Answer: answer})
	if err != nil {
		t.Fatal(err)
	}
	dial := func() tunnel.Session {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := (&tunnel.Dialer{Transport: tr, TLS: client}).Dial(ctx, g.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return g, dial
}

// TestFakesTalk: the fake agent and the fake gateway speak the protocol
// to each other over both transports: welcome, a request on a stream,
// goaway and its acknowledgement, and the reject the test chose.
func TestFakesTalk(t *testing.T) {
	for _, tr := range tunnel.Transports {
		t.Run(tr, func(t *testing.T) {
			g, dial := fakes(t, tr, func(n int, h tunnel.Hello) tunnel.Message {
				if h.AgentID == "refused" {
					return tunnel.Reject{Code: tunnel.RejectShutdown, Message: "go elsewhere"}
				}
				return tunnel.Welcome{}
			})
			a, err := Connect(t, dial(), tunnel.Hello{BrokerID: "acme", AgentID: "a1"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello from "+r.URL.Path)
			}))
			if err != nil {
				t.Fatal(err)
			}
			gs := g.Next(t, 10*time.Second)
			if gs.Hello.AgentID != "a1" || gs.ID != a.Welcome.SessionID || a.Welcome.GatewayVersion != "fake" {
				t.Errorf("hello at the gateway %+v, welcome at the agent %+v; want agent a1, the same session id, version fake", gs.Hello, a.Welcome)
			}
			code, body, err := gs.Get("/x", nil, 10*time.Second)
			if err != nil || code != 200 || string(body) != "hello from /x" {
				t.Errorf("GET /x through the session: got %d %q %v, want 200 %q", code, body, err, "hello from /x")
			}
			if n := len(g.Live()); n != 1 {
				t.Errorf("live sessions: got %d, want 1", n)
			}

			g.GoAway()
			testwait.Recv(t, 10*time.Second, "a goaway at the agent", a.Loop.GoAway())
			testwait.Recv(t, 10*time.Second, "the acknowledgement at the agent", a.Loop.Acknowledged())
			a.Loop.CloseWrite() // drained: the gateway closes the session
			testwait.Recv(t, 10*time.Second, "the fake gateway to close the drained session", a.Session.Done())
			testwait.For(t, 10*time.Second, "no live session", func() bool { return len(g.Live()) == 0 })

			s := dial()
			_, err = Connect(t, s, tunnel.Hello{BrokerID: "acme", AgentID: "refused"}, nil)
			var rej *tunnel.RejectError
			if !errors.As(err, &rej) || rej.Reject.Code != tunnel.RejectShutdown {
				t.Errorf("hello of agent refused: got %v, want reject %s", err, tunnel.RejectShutdown)
			}
		})
	}
}

// TestExpectGoAwayAfterEnd: a gateway with nothing in flight sends goaway
// and half-closes at once. Once the agent's loop has read both, GoAway and
// Done are ready together, and ExpectGoAway still returns the goaway
// rather than calling it an end without one, as a plain select over the
// two does half the time: ten sessions make that a near certainty.
func TestExpectGoAwayAfterEnd(t *testing.T) {
	g, dial := fakes(t, tunnel.TransportTCP, nil)
	for i := range 10 {
		a, err := Connect(t, dial(), tunnel.Hello{BrokerID: "acme", AgentID: fmt.Sprintf("a%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		g.Next(t, 10*time.Second).GoAway("cycling")
		testwait.Recv(t, 10*time.Second, "the end of the control stream", a.Loop.Done())
		if got := ExpectGoAway(t, a.Loop, time.Second); got.Reason != "cycling" {
			t.Fatalf("session %d: got %+v, want the goaway sent", i, got)
		}
		a.Close()
	}
}
