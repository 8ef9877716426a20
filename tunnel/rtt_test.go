package tunnel

import (
	"testing"
	"time"
)

// TestRTT: both sides of a session, on both transports, report the round
// trip time their transport measures (QUIC's own, yamux's keepalives).
func TestRTT(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			client, server := pair(t, tr, Options{KeepAlive: 20 * time.Millisecond})
			for name, s := range map[string]Session{"client": client, "server": server} {
				deadline := time.Now().Add(10 * time.Second)
				for {
					d, ok := RTT(s)
					if ok {
						if d <= 0 || d > 5*time.Second {
							t.Errorf("%s: RTT %s on loopback", name, d)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: no RTT after 10 s", name)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}
