package suite

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/bench/load"
	"github.com/oxsecurity/oxbroker/bench/rig"
	"github.com/oxsecurity/oxbroker/gateway"
)

// Forwarding compares a connector request that lands on the replica
// holding the agent's session (local) with one that lands on another
// replica, which forwards it over its internal listener (forwarded), in a
// cluster of two gateways sharing a Redis registry.
type Forwarding struct {
	Transport        string  `json:"transport"`
	LocalP50C1Ms     float64 `json:"local_p50_ms_c1"`
	LocalP99C1Ms     float64 `json:"local_p99_ms_c1"`
	ForwardedP50C1Ms float64 `json:"forwarded_p50_ms_c1"`
	ForwardedP99C1Ms float64 `json:"forwarded_p99_ms_c1"`
	LocalRPS         float64 `json:"local_rps_c32"`
	ForwardedRPS     float64 `json:"forwarded_rps_c32"`
	Errors           int     `json:"errors"`
}

// forwarding runs the cluster: a real redis-server, replicas A and B, an
// agent connected to A only. The latency runs alternate between A and B,
// twice each, and the medians count.
func (s *suite) forwarding(ctx context.Context, transport string) (*Forwarding, error) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server, or -cluster=false): %w", err)
	}
	redisAddr, err := rig.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(redisAddr)
	redis, err := s.startProc("redis", redisBin, nil, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	defer redis.stop()
	if err := waitTCP(ctx, redis, redisAddr, 10*time.Second); err != nil {
		return nil, err
	}
	secret := s.path("cluster.secret")
	if err := os.WriteFile(secret, []byte(gateway.NewToken()+"\n"), 0o600); err != nil {
		return nil, err
	}
	var replicas [2]rig.Replica
	var procs [2]*proc
	for i, name := range []string{"a", "b"} {
		r := rig.Replica{RedisURL: "redis://" + redisAddr + "/0", SecretFile: secret}
		if r.GatewayAddrs, err = rig.FreeGatewayAddrs(); err != nil {
			return nil, err
		}
		if r.Internal, err = rig.FreeAddr(); err != nil {
			return nil, err
		}
		cfgPath := s.path("replica-" + name + ".yaml")
		if err := os.WriteFile(cfgPath, s.rig.ReplicaConfig(r, s.cfg.LogLevel), 0o600); err != nil {
			return nil, err
		}
		p, err := s.startProc("replica-"+name, s.bin("oxbroker-gateway"), s.cfg.Env, "run", "--config", cfgPath)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		if err := waitHTTP(ctx, p, "http://"+r.Admin+"/readyz", 10*time.Second); err != nil {
			return nil, err
		}
		replicas[i], procs[i] = r, p
	}
	cfg, err := s.rig.AgentConfig(rig.Agent{Transport: transport, Tunnel: replicas[0].Tunnel,
		JiraURL: "http://" + s.jiraAt, Level: s.cfg.LogLevel})
	if err != nil {
		return nil, err
	}
	cfgPath := s.path("agent-cluster.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	ag, err := s.startProc("agent-cluster", s.bin("oxbroker"), append([]string{"JIRA_TOKEN=" + s.rig.JiraToken}, s.cfg.Env...),
		"run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	defer ag.stop()
	if _, err := waitSessions(ctx, procs[0], replicas[0].Admin, transport, 2, 20*time.Second); err != nil {
		return nil, fmt.Errorf("agent: %w (log: %s)", err, ag.log.Name())
	}
	prefix := "/b/" + rig.BrokerID + "/" + rig.Site
	local := endpoint{name: "local", addr: replicas[0].API, prefix: prefix, token: s.rig.ConnectorToken}
	fwd := endpoint{name: "forwarded", addr: replicas[1].API, prefix: prefix, token: s.rig.ConnectorToken}
	if n, err := gatewaySessions(&http.Client{Timeout: 2 * time.Second}, replicas[1].Admin, transport); err != nil || n != 0 {
		return nil, fmt.Errorf("replica b holds %d sessions (%v), want none: the forwarded figure would be local", n, err)
	}
	for _, ep := range []endpoint{local, fwd} {
		if err := s.sameAnswer(ctx, ep); err != nil {
			return nil, fmt.Errorf("%s: %w", ep.name, err)
		}
	}

	f := &Forwarding{Transport: transport}
	runOn := func(ep endpoint, conns int, d time.Duration) (load.Result, error) {
		pool := load.NewPool(ep.addr, conns)
		defer pool.Close()
		req := load.Request(ep.addr, ep.prefix+"/rest/api/3/issue/"+issueKey, ep.header())
		r, err := pool.Run(load.Run{Request: req, Conns: conns, Max: s.cfg.MaxRequests, For: d})
		f.Errors += r.Errors
		return r, err
	}
	for _, ep := range []endpoint{local, fwd} { // warm both paths
		if _, err := runOn(ep, s.cfg.Conns, s.cfg.Warmup); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", ep.name, err)
		}
	}
	var lp50, lp99, fp50, fp99 []float64
	for range 2 {
		for _, ep := range []endpoint{local, fwd} {
			r, err := runOn(ep, 1, s.cfg.LatencyFor)
			if err != nil {
				return nil, fmt.Errorf("%s at c1: %w", ep.name, err)
			}
			s.logf("cluster %s: %s GET issue at c1: p50 %.3f ms, p99 %.3f ms", transport, ep.name, ms(r.P50), ms(r.P99))
			if ep.name == "local" {
				lp50, lp99 = append(lp50, ms(r.P50)), append(lp99, ms(r.P99))
			} else {
				fp50, fp99 = append(fp50, ms(r.P50)), append(fp99, ms(r.P99))
			}
		}
	}
	f.LocalP50C1Ms, f.LocalP99C1Ms = median(lp50), median(lp99)
	f.ForwardedP50C1Ms, f.ForwardedP99C1Ms = median(fp50), median(fp99)
	for _, ep := range []endpoint{local, fwd} {
		r, err := runOn(ep, s.cfg.Conns, s.cfg.LoadFor)
		if err != nil {
			return nil, fmt.Errorf("%s at c%d: %w", ep.name, s.cfg.Conns, err)
		}
		if ep.name == "local" {
			f.LocalRPS = r.RPS
		} else {
			f.ForwardedRPS = r.RPS
		}
	}
	s.logf("cluster %s: forwarded p50 at c1 %+.3f ms against local (%.3f vs %.3f), c%d %.0f vs %.0f req/s, %d errors",
		transport, f.ForwardedP50C1Ms-f.LocalP50C1Ms, f.ForwardedP50C1Ms, f.LocalP50C1Ms, s.cfg.Conns, f.ForwardedRPS, f.LocalRPS, f.Errors)
	return f, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if err := pause(ctx, p, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: %s not accepting within %s", p.name, addr, timeout)
}

// Table returns the Markdown table of the forwarding figures.
func (f *Forwarding) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| cluster of 2 replicas (%s), GET issue | local | forwarded | added by forwarding |\n|---|---:|---:|---:|\n", f.Transport)
	fmt.Fprintf(&b, "| p50 at c1, ms | %.3f | %.3f | %+.3f ms |\n", f.LocalP50C1Ms, f.ForwardedP50C1Ms, f.ForwardedP50C1Ms-f.LocalP50C1Ms)
	fmt.Fprintf(&b, "| p99 at c1, ms | %.3f | %.3f | %+.3f ms |\n", f.LocalP99C1Ms, f.ForwardedP99C1Ms, f.ForwardedP99C1Ms-f.LocalP99C1Ms)
	fmt.Fprintf(&b, "| req/s at c32 | %.0f | %.0f | %.2f× |\n", f.LocalRPS, f.ForwardedRPS, f.ForwardedRPS/max(f.LocalRPS, 1))
	return b.String()
}
