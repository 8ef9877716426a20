package agent

import (
	"net/http"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
)

// call sends one Jira call on a new stream of s, as the gateway does.
func call(s tunnel.Session) (int, error) {
	h := http.Header{brokerhttp.HeaderSite: {"jira"}, brokerhttp.HeaderRequestID: {"ack-test"}}
	code, _, err := sessiontest.Get(s, "/rest/api/3/myself", h, 3*time.Second)
	return code, err
}

// TestDrainServesUntilGatewayAcks checks the drain protocol
// (tunnel/spec.md): after a goaway, whichever side sent it, the agent
// keeps serving streams the gateway opens, because the gateway may have
// routed a call to the session before it knew; it stops once the gateway
// half-closes the control stream, and then the session ends.
func TestDrainServesUntilGatewayAcks(t *testing.T) {
	for _, tr := range transports {
		for _, who := range []string{"agent", "gateway"} {
			t.Run(tr+"/goaway-from-"+who, func(t *testing.T) {
				e := newEnv(t)
				// The test plays the gateway's part of the drain.
				g := e.fakeGateway(t, sessiontest.GatewayOptions{Hold: true})
				ra := startAgent(t, e, e.agentConfig(t, tr, g.Addr(), 1, e.BrokerToken))
				old := g.Next(t, 15*time.Second)
				testwait.For(t, 10*time.Second, "the agent's session", ra.Ready)

				if who == "agent" {
					go ra.cancel() // the agent drains: it sends goaway
					sessiontest.ExpectGoAway(t, old.Loop, 15*time.Second)
				} else {
					old.Loop.Send(tunnel.GoAway{Reason: "test gateway draining"})
					g.Next(t, 15*time.Second) // the agent's replacement session
				}
				// Well after the goaway, and before any acknowledgement: a
				// call routed just before the gateway knew.
				time.Sleep(1500 * time.Millisecond)
				if code, err := call(old.Session); err != nil || code != 200 {
					t.Fatalf("call on the draining session before the acknowledgement: %d, %v; want 200", code, err)
				}
				old.Loop.CloseWrite() // the acknowledgement
				// The agent drains and half-closes its side.
				testwait.Recv(t, 10*time.Second, "the agent to half-close the control stream after the acknowledgement", old.Loop.Done())
				select {
				case <-old.Loop.Acknowledged():
				default:
					t.Fatalf("after the acknowledgement: %v; want EOF on the control stream", old.Loop.Err())
				}
				if _, err := call(old.Session); err == nil {
					t.Error("a call after the acknowledgement was served; want the stream refused")
				}
			})
		}
	}
}
