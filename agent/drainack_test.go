package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// ackGateway is a gateway reduced to the drain protocol: it welcomes
// every session and hands them to the test, with their control stream
// for the test to write by hand.
type ackGateway struct {
	addr     string
	sessions chan ackSession
}

type ackSession struct {
	s    tunnel.Session
	ctrl *tunnel.Control
	st   net.Conn // the control stream under ctrl
}

func (e *env) startAckGateway(t *testing.T) *ackGateway {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.certs.Cert, e.certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tunnel.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, tunnel.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &ackGateway{addr: l.Addr().String(), sessions: make(chan ackSession, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			// The handshake by hand, to keep the control stream.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := s.AcceptStream(ctx)
			cancel()
			var ctrl *tunnel.Control
			if err == nil {
				ctrl = tunnel.NewControl(st)
				var m tunnel.Message
				if m, err = ctrl.Recv(time.Now().Add(10 * time.Second)); err == nil {
					if _, ok := m.(tunnel.Hello); !ok {
						err = fmt.Errorf("got %T, want hello", m)
					}
				}
			}
			if err == nil {
				st.SetReadDeadline(time.Time{})
				err = ctrl.Send(tunnel.Welcome{SessionID: "ack-test", GatewayVersion: "test"})
			}
			if err != nil {
				s.Close()
				continue
			}
			select {
			case g.sessions <- ackSession{s, ctrl, st}:
			default:
				s.Close()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for {
			select {
			case as := <-g.sessions:
				as.s.Close()
			default:
				return
			}
		}
	})
	return g
}

func (g *ackGateway) next(t *testing.T) ackSession {
	t.Helper()
	select {
	case as := <-g.sessions:
		t.Cleanup(func() { as.s.Close() })
		return as
	case <-time.After(15 * time.Second):
		t.Fatal("no agent session within 15 s")
		return ackSession{}
	}
}

// waitGoAway reads the control stream until a goaway.
func waitGoAway(t *testing.T, ctrl *tunnel.Control) {
	t.Helper()
	for {
		m, err := ctrl.Recv(time.Now().Add(10 * time.Second))
		if errors.Is(err, tunnel.ErrUnknownMessage) {
			continue
		}
		if err != nil {
			t.Fatalf("waiting for goaway: %v", err)
		}
		if _, ok := m.(tunnel.GoAway); ok {
			return
		}
	}
}

// call sends one Jira call on a new stream of s, as the gateway does.
func call(s tunnel.Session) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(st, "GET /rest/api/3/myself HTTP/1.1\r\nHost: agent\r\nOx-Broker-Site: jira\r\n"+
		"Ox-Broker-Request-Id: ack-test\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestDrainServesUntilGatewayAcks checks the drain protocol
// (tunnel/spec.md): after a goaway, whichever side sent it, the agent
// keeps serving streams the gateway opens, because the gateway may have
// routed a call to the session before it knew; it stops once the gateway
// half-closes the control stream, and then the session ends.
func TestDrainServesUntilGatewayAcks(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		for _, who := range []string{"agent", "gateway"} {
			t.Run(tr+"/goaway-from-"+who, func(t *testing.T) {
				e := newEnv(t)
				g := e.startAckGateway(t)
				ra := startAgent(t, e, e.agentConfig(t, tr, g.addr, 1, e.brokerToken))
				old := g.next(t)
				waitFor(t, 10*time.Second, "the agent's session", ra.Ready)

				if who == "agent" {
					go ra.cancel() // the agent drains: it sends goaway
					waitGoAway(t, old.ctrl)
				} else {
					old.ctrl.Send(tunnel.GoAway{Reason: "test gateway draining"})
					g.next(t) // the agent's replacement session
				}
				// Well after the goaway, and before any acknowledgement: a
				// call routed just before the gateway knew.
				time.Sleep(1500 * time.Millisecond)
				if code, err := call(old.s); err != nil || code != 200 {
					t.Fatalf("call on the draining session before the acknowledgement: %d, %v; want 200", code, err)
				}
				old.ctrl.CloseWrite() // the acknowledgement
				// The agent drains and half-closes its side.
				for {
					_, err := old.ctrl.Recv(time.Now().Add(10 * time.Second))
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil && !errors.Is(err, tunnel.ErrUnknownMessage) {
						t.Fatalf("after the acknowledgement: %v; want EOF on the control stream", err)
					}
				}
				if _, err := call(old.s); err == nil {
					t.Error("a call after the acknowledgement was served; want the stream refused")
				}
			})
		}
	}
}
