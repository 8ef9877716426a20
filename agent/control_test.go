package agent

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

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
				g := e.startAckGateway(t)
				ra := startAgent(t, e, e.agentConfig(t, tr, g.addr, 1, e.brokerToken))
				rs := g.next(t)
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
				g.next(t) // the agent dials a new session
			})
		}
	}
}
