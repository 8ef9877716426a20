package suite

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/oxsecurity/oxbroker/bench/agentsim"
	"github.com/oxsecurity/oxbroker/bench/procstat"
	"github.com/oxsecurity/oxbroker/bench/rig"
)

// idle measures, on a fresh gateway holding IdleSessions simulated
// agents, the memory per idle session and the gateway's CPU while they
// only exchange keepalives; then the time for Reconnect of them to be
// back after the gateway is killed and started again.
func (s *suite) idle(ctx context.Context, transport string, f *Figures) error {
	c := s.cfg
	addrs, err := rig.FreeGatewayAddrs()
	if err != nil {
		return err
	}
	name := "gateway-idle-" + transport
	gw, err := s.startGateway(ctx, name, addrs)
	if err != nil {
		return err
	}
	defer func() {
		if gw != nil { // nil when the restarted gateway did not start
			gw.stop()
		}
	}()
	if err := pause(ctx, gw, time.Second); err != nil {
		return err
	}
	m0, err := procstat.Mem(gw.pid())
	if err != nil {
		return err
	}
	d, err := s.rig.Dialer(transport)
	if err != nil {
		return err
	}
	fleet := agentsim.New(agentsim.Config{Dialer: d, Addr: addrs.Tunnel, Hello: s.rig.Hello("http://" + s.jiraAt)})
	defer fleet.Close()

	t0 := time.Now()
	if err := fleet.Grow(ctx, c.IdleSessions, growRamp, scaleTimeout(2*time.Minute, c.IdleSessions, 20*time.Millisecond)); err != nil {
		return err
	}
	if _, err := waitSessions(ctx, gw, addrs.Admin, transport, c.IdleSessions, 30*time.Second); err != nil {
		return err
	}
	f.IdleSessions = c.IdleSessions
	f.ConnectSeconds = time.Since(t0).Seconds()
	s.logf("%s: %d simulated agents connected in %.1f s", transport, c.IdleSessions, f.ConnectSeconds)
	if err := pause(ctx, gw, c.Settle); err != nil {
		return err
	}
	m1, err := procstat.Mem(gw.pid())
	if err != nil {
		return err
	}
	// The gateway's own count divides: it may still hold a few sessions
	// that agents have given up (waitSessions).
	held, err := gatewaySessions(&http.Client{Timeout: 2 * time.Second}, addrs.Admin, transport)
	if err != nil {
		return err
	}
	f.GatewaySessionsHeld = held
	f.GatewayBaseRSSMiB = float64(m0.RSS) / (1 << 20)
	f.GatewaySessionsRSSMiB = float64(m1.RSS) / (1 << 20)
	f.IdleSessionKiB = float64(m1.RSS-m0.RSS) / 1024 / float64(max(held, 1))
	s.logf("%s: gateway RSS %.1f MiB idle, %.1f MiB with %d sessions: %.1f KiB per session",
		transport, f.GatewayBaseRSSMiB, f.GatewaySessionsRSSMiB, held, f.IdleSessionKiB)

	if c.IdleCPUFor > 0 {
		cpu, wall, err := cpuOver(ctx, gw, c.IdleCPUFor)
		if err != nil {
			return err
		}
		f.IdleCPUWindowSeconds = wall.Seconds()
		f.IdleCPUPercent, f.IdleCPUUsPerSessionSecond = idleCPU(cpu, wall, c.IdleSessions)
		s.logf("%s: gateway CPU with %d idle sessions: %.1f%% of a core over %.0f s, %.2f µs per session per second",
			transport, c.IdleSessions, f.IdleCPUPercent, wall.Seconds(), f.IdleCPUUsPerSessionSecond)
	}

	// The agents stopped here are gone before the kill (Shrink waits for
	// them), so that only the others can come back.
	fleet.Shrink(c.IdleSessions - c.Reconnect)
	failed := fleet.Failures()
	killed := time.Now()
	gw.kill()
	s.logf("%s: the gateway was killed; it took %.2f s to exit", transport, time.Since(killed).Seconds())
	gw, err = s.startGateway(ctx, name, addrs)
	if err != nil {
		return fmt.Errorf("restart the gateway under %d reconnecting agents: %w", c.Reconnect, err)
	}
	ready := time.Since(killed)
	// Back means welcomed by the new gateway: each agent's own session,
	// as the agent sees it, welcomed after the kill.
	bound := scaleTimeout(time.Minute, c.Reconnect, 12*time.Millisecond)
	back, allBack := 0, false
	report := killed.Add(10 * time.Second)
	for time.Since(killed) < bound {
		if back = fleet.UpSince(killed); back >= c.Reconnect {
			allBack = true
			break
		}
		if time.Now().After(report) {
			s.logf("%s: %d of %d agents back after %.0f s", transport, back, c.Reconnect, time.Since(killed).Seconds())
			report = report.Add(10 * time.Second)
		}
		if err := pause(ctx, gw, 50*time.Millisecond); err != nil {
			return err
		}
	}
	elapsed := time.Since(killed)
	cpu, err := procstat.CPU(gw.pid())
	if err != nil {
		return err
	}
	f.ReconnectAgents = c.Reconnect
	f.ReconnectBack = back
	f.ReconnectSeconds = elapsed.Seconds()
	f.GatewayRestartSeconds = ready.Seconds()
	f.ReconnectFailedAttempts = fleet.Failures() - failed
	f.ReconnectGatewayCPUSeconds = cpu.Seconds()
	if !allBack {
		s.logf("%s: only %d of %d agents back %.0f s after the gateway was killed; the run goes on", transport, back, c.Reconnect, elapsed.Seconds())
	}
	s.logf("%s: %d of %d agents back %.2f s after the gateway was killed (it was ready again after %.2f s; %d failed attempts; the new gateway used %.1f s of CPU)",
		transport, back, c.Reconnect, f.ReconnectSeconds, f.GatewayRestartSeconds, f.ReconnectFailedAttempts, f.ReconnectGatewayCPUSeconds)
	return nil
}

// growRamp is how many simulated agents dial their first session at once.
const growRamp = 64

// scaleTimeout bounds a wait on n agents: base, or per for each agent
// when that is longer.
func scaleTimeout(base time.Duration, n int, per time.Duration) time.Duration {
	return max(base, time.Duration(n)*per)
}

// cpuOver returns the CPU time p uses over the next d, and the wall time
// it was measured over.
func cpuOver(ctx context.Context, p *proc, d time.Duration) (cpu, wall time.Duration, err error) {
	c0, err := procstat.CPU(p.pid())
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := pause(ctx, p, d); err != nil {
		return 0, 0, err
	}
	c1, err := procstat.CPU(p.pid())
	if err != nil {
		return 0, 0, err
	}
	return c1 - c0, time.Since(t0), nil
}

// idleCPU turns CPU time used over wall by a gateway holding sessions
// into a share of one core, in percent, and microseconds per session per
// second.
func idleCPU(cpu, wall time.Duration, sessions int) (percent, usPerSessionSecond float64) {
	if wall <= 0 || sessions <= 0 {
		return 0, 0
	}
	perSecond := cpu.Seconds() / wall.Seconds() // cores
	return 100 * perSecond, perSecond * 1e6 / float64(sessions)
}
