package agent

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// rogueGateway welcomes every session with a handshake written by hand,
// to keep the control stream under it, and hands the sessions to the
// test, which writes frames on that stream by hand.
type rogueGateway struct {
	addr     string
	sessions chan rogueSession
}

type rogueSession struct {
	s  tunnel.Session
	st net.Conn // the control stream
}

func (e *env) startRogueGateway(t *testing.T) *rogueGateway {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.Certs.Cert, e.Certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tunnel.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, tunnel.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &rogueGateway{addr: l.Addr().String(), sessions: make(chan rogueSession, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			if st, err := welcomeByHand(s); err == nil {
				select {
				case g.sessions <- rogueSession{s, st}:
					continue
				default:
				}
			}
			s.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for {
			select {
			case rs := <-g.sessions:
				rs.s.Close()
			default:
				return
			}
		}
	})
	return g
}

// welcomeByHand reads the hello on the first stream of s and answers
// welcome; it returns the stream.
func welcomeByHand(s tunnel.Session) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	ctrl := tunnel.NewControl(st)
	m, err := ctrl.Recv(time.Now().Add(10 * time.Second))
	if err != nil {
		return nil, err
	}
	if _, ok := m.(tunnel.Hello); !ok {
		return nil, fmt.Errorf("got %T, want hello", m)
	}
	st.SetReadDeadline(time.Time{})
	return st, ctrl.Send(tunnel.Welcome{SessionID: "rogue", GatewayVersion: "rogue"})
}

func (g *rogueGateway) next(t *testing.T) rogueSession {
	t.Helper()
	rs := testwait.Recv(t, 15*time.Second, "an agent session", g.sessions)
	t.Cleanup(func() { rs.s.Close() })
	return rs
}

// TestBadControlFrameClosesSession: after a bad control frame from the
// gateway the agent closes the session (rather than reading no control
// message ever again and keeping it, its exit counting as a drain
// acknowledgement), counts it, and dials a new one. An unknown message
// type is ignored.
func TestBadControlFrameClosesSession(t *testing.T) {
	frame := func(p string) string { return string(binary.BigEndian.AppendUint32(nil, uint32(len(p)))) + p }
	bad := []struct{ name, raw string }{
		{"zero length", "\x00\x00\x00\x00"},
		{"over 1 MiB", "\x00\x10\x00\x01"},
		{"garbage JSON", frame(`{"type":"goaway",`)},
		{"goaway with a number for reason", frame(`{"type":"goaway","reason":5}`)},
	}
	for _, tr := range transports {
		for _, c := range bad {
			t.Run(tr+"/"+c.name, func(t *testing.T) {
				e := newEnv(t)
				g := e.startRogueGateway(t)
				ra := startAgent(t, e, e.agentConfig(t, tr, g.addr, 1, e.BrokerToken))
				rs := g.next(t)
				testwait.For(t, 10*time.Second, "the agent's session", ra.Ready)
				rs.st.Write([]byte(frame(`{"type":"from-the-future"}`)))
				if code, err := call(rs.s); err != nil || code != 200 {
					t.Fatalf("a call after an unknown message: %d, %v; want 200", code, err)
				}
				rs.st.Write([]byte(c.raw))
				testwait.Recv(t, 5*time.Second, "the agent to close the session after a bad control frame", rs.s.Done())
				var m dto.Metric
				ra.metrics.limits.WithLabelValues(limitControl).Write(&m)
				if got := m.GetCounter().GetValue(); got != 1 {
					t.Errorf("oxbroker_tunnel_limits_total{limit=control}: got %v, want 1", got)
				}
				if !strings.Contains(ra.logs.String(), "the gateway sent a bad control frame") {
					t.Error("the bad frame was not logged")
				}
				g.next(t) // the agent dials a new session
			})
		}
	}
}
