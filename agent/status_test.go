package agent

import (
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// TestStatus: the facts of systemd's status line follow the tunnels.
// That Status answers only when the agent's lock is free is shown by the
// live test's watchdog step (packaging/live), which holds it.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	gw := e.startGateway(t, "127.0.0.1:0")
	a := startAgent(t, e, e.agentConfig(t, transports[0], gw.tunnel, 2, e.BrokerToken))
	testwait.For(t, 10*time.Second, "two tunnels in Status", func() bool { return a.Status().Tunnels == 2 })
	if st := a.Status(); st.Wanted != 2 || !st.Ready || st.Reason != "" {
		t.Errorf("with two tunnels up: got %+v, want 2 of 2, ready, no reason", st)
	}
	gw.stop(t)
	testwait.For(t, 30*time.Second, "no tunnel in Status", func() bool { return a.Status().Tunnels == 0 })
	if st := a.Status(); st.Ready || st.Reason == "" {
		t.Errorf("with the gateway gone: got %+v, want not ready, with the reason", st)
	}
}
