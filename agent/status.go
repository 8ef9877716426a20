package agent

// Status is a snapshot of the agent's tunnels, for a service manager's
// status line and watchdog.
type Status struct {
	Tunnels int  // tunnel sessions up
	Wanted  int  // gateway.connections: the sessions the agent keeps
	Ready   bool // as Readiness
	// Reason is Readiness's: what is wrong, one line each.
	Reason string
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
	return Status{Tunnels: int(a.live.Load()), Wanted: wanted, Ready: ok, Reason: why}
}
