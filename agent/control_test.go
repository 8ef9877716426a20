package agent

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// rawSession is an agent's session at a gateway whose control stream the
// test writes by hand.
type rawSession struct {
	s  tunnel.Session
	st net.Conn
}

// startRawGateway welcomes every agent session and hands it to the test.
func (e *env) startRawGateway(t *testing.T) (string, <-chan rawSession) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.certs.Cert, e.certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tunnel.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, tunnel.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sessions := make(chan rawSession, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := s.AcceptStream(ctx)
			cancel()
			if err == nil {
				ctrl := tunnel.NewControl(st)
				if _, err = ctrl.Recv(time.Now().Add(10 * time.Second)); err == nil {
					err = ctrl.Send(tunnel.Welcome{SessionID: "raw", GatewayVersion: "test"})
				}
			}
			if err != nil {
				s.Close()
				continue
			}
			select {
			case sessions <- rawSession{s, st}:
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
			case rs := <-sessions:
				rs.s.Close()
			default:
				return
			}
		}
	})
	return l.Addr().String(), sessions
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
	for _, tr := range []string{"tcp", "quic"} {
		for _, c := range bad {
			t.Run(tr+"/"+c.name, func(t *testing.T) {
				e := newEnv(t)
				addr, sessions := e.startRawGateway(t)
				ra := startAgent(t, e, e.agentConfig(t, tr, addr, 1, e.brokerToken))
				var rs rawSession
				select {
				case rs = <-sessions:
				case <-time.After(15 * time.Second):
					t.Fatal("no agent session")
				}
				waitFor(t, 10*time.Second, "the agent's session", ra.Ready)
				rs.st.Write([]byte(frame(`{"type":"from-the-future"}`)))
				if code, err := call(rs.s); err != nil || code != 200 {
					t.Fatalf("a call after an unknown message: %d, %v; want 200", code, err)
				}
				rs.st.Write([]byte(c.raw))
				select {
				case <-rs.s.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the agent kept the session 5 s after a bad control frame")
				}
				var m dto.Metric
				ra.metrics.limits.WithLabelValues(limitControl).Write(&m)
				if got := m.GetCounter().GetValue(); got != 1 {
					t.Errorf("oxbroker_tunnel_limits_total{limit=control}: got %v, want 1", got)
				}
				if !strings.Contains(ra.logs.String(), "the gateway sent a bad control frame") {
					t.Error("the bad frame was not logged")
				}
				select {
				case <-sessions:
				case <-time.After(15 * time.Second):
					t.Fatal("the agent did not dial a new session")
				}
			})
		}
	}
}
