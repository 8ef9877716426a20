package agent

import (
	"strconv"
	"strings"
)

// Status is a snapshot of the agent's tunnels, for a service manager's
// status line and watchdog.
type Status struct {
	Tunnels int  // tunnel sessions up
	Wanted  int  // gateway.connections: the sessions the agent keeps
	Ready   bool // as Readiness
	// Reason is Readiness's: what is wrong, one line each.
	Reason string
	// Gateway is why no tunnel is up, in the words of `oxbroker check`
	// ("<cause> Fix: <fix>"); "" while one is up or before a dial failed.
	Gateway string
	// Sites are the sites that are down or failed their probe, one line
	// each ("site NAME: ...").
	Sites []string
}

// Status takes the agent's lock, the one that dialing a session, ending
// one, a reload and sending the site list all take. A caller that gets an
// answer therefore knows that the agent's work is not stuck behind it: the
// systemd watchdog pings only after Status has answered.
func (a *Agent) Status() Status {
	a.mu.Lock()
	wanted := a.cfg.Gateway.Connections
	a.mu.Unlock()
	ok, why := a.Readiness()
	st := Status{Tunnels: int(a.live.Load()), Wanted: wanted, Ready: ok, Reason: why}
	if f := a.gatewayProblem(); f != nil {
		st.Gateway = problemLine(f.Cause, f.Fix)
	}
	r := a.router.Load()
	st.Sites = append(r.down(), r.unhealthy()...)
	return st
}

// Summary is the agent's state in one line, as the service manager's
// status shows it: "connected: 2 of 2 tunnels to the gateway up", or
// "not connected: <cause> Fix: <fix>", then "; site NAME: ..." for each
// site that is down or unhealthy.
func (st Status) Summary() string {
	var b strings.Builder
	switch {
	case st.Tunnels > 0:
		b.WriteString("connected: ")
		b.WriteString(tunnelsUp(st))
	case st.Gateway != "":
		b.WriteString("not connected: " + st.Gateway)
	default:
		b.WriteString("not connected yet: " + tunnelsUp(st))
	}
	for _, s := range st.Sites {
		b.WriteString("; " + s)
	}
	return b.String()
}

func tunnelsUp(st Status) string {
	return strconv.Itoa(st.Tunnels) + " of " + strconv.Itoa(st.Wanted) + " tunnels to the gateway up"
}
