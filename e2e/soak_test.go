package e2e

// The soak run: the fault scenarios for longer, with more cycles. It runs
// only with OXBROKER_SOAK=1 (`make soak`), for about 10 minutes; `make
// test` skips it.

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// Sizes of the soak run.
const (
	soakCycles         = 1000            // fake-gateway session cycles per transport
	soakRestartCycles  = 200             // real-gateway disconnect cycles per transport
	soakLoadRate       = 10              // calls a second during the restart cycles
	soakSteadyDuration = 3 * time.Minute // steady load at loadRate
)

func soakOnly(t *testing.T) {
	if os.Getenv("OXBROKER_SOAK") == "" {
		t.Skip("soak run: make soak (OXBROKER_SOAK=1)")
	}
}

// TestSoakNoGrowth: 1,000 session cycles per transport against the fake
// gateway, then the no-growth checks of TestFault/no-growth.
func TestSoakNoGrowth(t *testing.T) {
	soakOnly(t)
	concurrently(t, overTransports("", func(t *testing.T, tr string) { testNoGrowth(t, tr, soakCycles) }))
}

// TestSoakGatewayRestarts: 200 disconnect/reconnect cycles against the
// real gateway under a steady load: SIGTERM and a new gateway process,
// and (TCP) a reset of every connection by the relay, in turns. After
// every cycle the agent is back and serving within 30 s; no call hangs
// past its timeout, and every call that fails fails with a clear answer
// (502 broker_offline) or finds no listener; the agent's goroutines and
// heap end where they began.
func TestSoakGatewayRestarts(t *testing.T) {
	soakOnly(t)
	concurrently(t, overTransports("", testSoakRestarts))
}

func testSoakRestarts(t *testing.T, tr string) {
	e := newLowPortEnv(t)
	gw := e.startGateway()
	r := newRelay(t, e)
	admin := lowPortAddr(t, false)
	cfg := e.agentConfig(agentOpts{transport: tr, address: r.Addr(), serverName: "127.0.0.1", admin: admin})
	start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken, "GOGC=10"}, "run", "--config", cfg)
	t.Cleanup(func() { r.Set(tunneltest.Pass()) })
	e.waitSessions(2, tr, 15*time.Second)
	before := idleFootprint(t, admin)

	const timeout = 15 * time.Second
	stop := e.steadyLoad(soakLoadRate, timeout)
	began := time.Now()
	var slowestBack time.Duration
	for i := range soakRestartCycles {
		cycle := time.Now()
		if i%2 == 0 || tr == "quic" {
			gw.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-gw.done:
			case <-time.After(40 * time.Second):
				stop()
				t.Fatalf("cycle %d: the gateway did not exit within 40 s of SIGTERM", i)
			}
			gw = e.startGateway()
		} else {
			r.SetTCP(tunneltest.Reset())
			r.SetTCP(tunneltest.Pass())
		}
		// Back: both sessions up and a call served, before the next fault.
		if _, ok := testwait.Until(30*time.Second, func() bool {
			return e.sessionCount() == 2 && e.connectorGet("/rest/api/3/myself", 5*time.Second).status == 200
		}); !ok {
			stop()
			t.Fatalf("cycle %d: the agent was not back within 30 s", i)
		}
		slowestBack = max(slowestBack, time.Since(cycle))
	}
	results := stop()
	took := time.Since(began)

	var ok, offline, refused int
	for _, res := range results {
		var ne net.Error
		switch {
		case res.end.Sub(res.start) > timeout+time.Second || (errors.As(res.err, &ne) && ne.Timeout()):
			t.Errorf("seq %d hung: %s after %s", res.seq, describe(res), res.end.Sub(res.start))
		case res.responded && res.err == nil && res.status == 200:
			ok++
		case res.responded && res.status == 502 && res.code == string(brokerhttp.BrokerOffline):
			offline++
		case res.dialErr != nil || !res.responded:
			refused++
		default:
			t.Errorf("seq %d: %s", res.seq, describe(res))
		}
	}
	after := idleFootprint(t, admin)
	t.Logf("MEASURE %s: %d cycles in %s (agent back within %s at worst); %d calls: %d ok, %d broker_offline, %d refused or reset; before: %s; after: %s",
		t.Name(), soakRestartCycles, took.Round(time.Second), slowestBack.Round(10*time.Millisecond), len(results), ok, offline, refused, before, after)
	if after.goroutines > before.goroutines+goroutineTolerance {
		t.Errorf("goroutines grew from %.0f to %.0f (tolerance %d)", before.goroutines, after.goroutines, goroutineTolerance)
	}
	later := after
	if _, ok := testwait.Until(yamuxCloseTimer+15*time.Second, func() bool {
		if later.heapInuse <= heapLimit(before) {
			return true
		}
		later = idleFootprint(t, admin)
		return false
	}); !ok {
		t.Errorf("heap in use grew from %.1f MiB to %.1f MiB and stayed there (tolerance +2 MiB)", before.heapInuse/(1<<20), later.heapInuse/(1<<20))
	}
}

// TestSoakSteadyLoad: minutes of steady load through the relay (a few ms
// of latency) on both transports. Every call succeeds, and neither the
// agent's nor the gateway's goroutines or heap grow after the first
// minute.
func TestSoakSteadyLoad(t *testing.T) {
	soakOnly(t)
	concurrently(t, overTransports("", testSoakSteady))
}

func testSoakSteady(t *testing.T, tr string) {
	e := newLowPortEnv(t)
	e.startGateway()
	r := newRelay(t, e)
	r.Set(tunneltest.Delay(2 * time.Millisecond))
	admin := lowPortAddr(t, false)
	cfg := e.agentConfig(agentOpts{transport: tr, address: r.Addr(), serverName: "127.0.0.1", admin: admin})
	start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken, "GOGC=10"}, "run", "--config", cfg)
	e.waitSessions(2, tr, 15*time.Second)
	e.Jira.SetDelay(loadDelay)

	gatewayFootprint := func() (float64, float64) {
		m := scrapeMetrics(t, e.adminAddr)
		g, _ := metricValue(m, "go_goroutines")
		h, _ := metricValue(m, "go_memstats_heap_inuse_bytes")
		return g, h
	}
	stop := e.steadyLoad(loadRate, loadTimeout)
	time.Sleep(time.Minute)
	agentWarm := idleFootprint(t, admin)
	gwGoroutinesWarm, gwHeapWarm := gatewayFootprint()
	time.Sleep(soakSteadyDuration - time.Minute)
	agentEnd := idleFootprint(t, admin)
	gwGoroutinesEnd, gwHeapEnd := gatewayFootprint()
	results := stop()

	failed := 0
	for _, res := range results {
		if !res.responded || res.err != nil || res.status != 200 {
			failed++
			t.Errorf("seq %d: %s", res.seq, describe(res))
		}
	}
	t.Logf("MEASURE %s: %d calls in %s, %d failed; agent after 1 min: %s, at the end: %s; gateway goroutines %.0f → %.0f, heap %.1f → %.1f MiB",
		t.Name(), len(results), soakSteadyDuration, failed, agentWarm, agentEnd, gwGoroutinesWarm, gwGoroutinesEnd, gwHeapWarm/(1<<20), gwHeapEnd/(1<<20))
	// Under load the counts move with the calls in flight (about five):
	// allow for them on top of the idle tolerance.
	if agentEnd.goroutines > agentWarm.goroutines+goroutineTolerance+40 {
		t.Errorf("agent goroutines grew from %.0f to %.0f under steady load", agentWarm.goroutines, agentEnd.goroutines)
	}
	if gwGoroutinesEnd > gwGoroutinesWarm+goroutineTolerance+40 {
		t.Errorf("gateway goroutines grew from %.0f to %.0f under steady load", gwGoroutinesWarm, gwGoroutinesEnd)
	}
	if agentEnd.heapInuse > agentWarm.heapInuse+heapToleranceBytes {
		t.Errorf("agent heap grew from %.1f to %.1f MiB under steady load", agentWarm.heapInuse/(1<<20), agentEnd.heapInuse/(1<<20))
	}
	// The gateway runs with the default GOGC: its heap in use swings with
	// the GC cycle, so the bound is wider.
	if gwHeapEnd > 2*gwHeapWarm+8<<20 {
		t.Errorf("gateway heap grew from %.1f to %.1f MiB under steady load", gwHeapWarm/(1<<20), gwHeapEnd/(1<<20))
	}
}
