package suite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/oxsecurity/oxbroker/bench/load"
	"github.com/oxsecurity/oxbroker/bench/procstat"
	"github.com/oxsecurity/oxbroker/bench/rig"
)

// throughBroker starts a gateway and an agent on transport, measures the
// request figures through them, and stops them.
func (s *suite) throughBroker(ctx context.Context, transport string) (*Figures, error) {
	addrs, err := rig.FreeGatewayAddrs()
	if err != nil {
		return nil, err
	}
	gw, err := s.startGateway(ctx, "gateway-"+transport, addrs)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	cfg, err := s.rig.AgentConfig(rig.Agent{Transport: transport, Tunnel: addrs.Tunnel,
		JiraURL: "http://" + s.jiraAt, Level: s.cfg.LogLevel})
	if err != nil {
		return nil, err
	}
	cfgPath := s.path("agent-" + transport + ".yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	ag, err := s.startProc("agent-"+transport, s.bin("oxbroker"), append([]string{"JIRA_TOKEN=" + s.rig.JiraToken}, s.cfg.Env...),
		"run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	defer ag.stop()
	// The agent keeps gateway.connections (default 2) sessions.
	if _, err := waitSessions(ctx, gw, addrs.Admin, transport, 2, 20*time.Second); err != nil {
		return nil, fmt.Errorf("agent: %w (log: %s)", err, ag.log.Name())
	}
	ep := endpoint{name: transport, addr: addrs.API, prefix: "/b/" + rig.BrokerID + "/" + rig.Site, token: s.rig.ConnectorToken}
	if err := s.sameAnswer(ctx, ep); err != nil {
		return nil, err
	}
	s.logf("%s: gateway pid %d, agent pid %d", transport, gw.pid(), ag.pid())
	f, err := s.measure(ctx, ep, []*proc{gw, ag})
	if err != nil {
		return nil, err
	}
	if err := s.bothSides(transport, f, gw, ag); err != nil {
		return nil, err
	}
	return f, nil
}

// bothSides fills in the figures of a tunnel's two sides, measured as
// procs[0] and procs[1]: server is the gateway or frps, client the agent
// or frpc.
func (s *suite) bothSides(name string, f *Figures, server, client *proc) error {
	f.GatewayCPUPerRequestUs, f.AgentCPUPerRequestUs = f.cpuPerRequest[0], f.cpuPerRequest[1]
	f.CPUPerRequestUs = f.GatewayCPUPerRequestUs + f.AgentCPUPerRequestUs
	for i, p := range []*proc{server, client} {
		m, err := procstat.Mem(p.pid())
		if err != nil {
			return err
		}
		peak := float64(m.Peak) / (1 << 20)
		if i == 0 {
			f.GatewayPeakRSSMiB = peak
		} else {
			f.AgentPeakRSSMiB = peak
		}
	}
	s.logf("%s: CPU %.1f µs/request (%s %.1f, %s %.1f); peak RSS %s %.1f MiB, %s %.1f MiB",
		name, f.CPUPerRequestUs, server.name, f.GatewayCPUPerRequestUs, client.name, f.AgentCPUPerRequestUs,
		server.name, f.GatewayPeakRSSMiB, client.name, f.AgentPeakRSSMiB)
	return nil
}

func (s *suite) startGateway(ctx context.Context, name string, addrs rig.GatewayAddrs) (*proc, error) {
	cfgPath := s.path(name + ".yaml")
	if err := os.WriteFile(cfgPath, s.rig.GatewayConfig(addrs, s.cfg.LogLevel), 0o600); err != nil {
		return nil, err
	}
	gw, err := s.startProc(name, s.bin("oxbroker-gateway"), s.cfg.Env, "run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, gw, "http://"+addrs.Admin+"/readyz", 10*time.Second); err != nil {
		return nil, err
	}
	return gw, nil
}

// sameAnswer checks that the issue comes back through ep exactly as the
// stand-in serves it directly, but for the links the agent rewrites.
func (s *suite) sameAnswer(ctx context.Context, ep endpoint) error {
	get := func(ep endpoint) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", ep.url("/rest/api/3/issue/"+issueKey), nil)
		if err != nil {
			return nil, err
		}
		load.SetHeader(req, ep.header())
		resp, err := s.bulk.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: status %d: %.200s", req.URL.Path, resp.StatusCode, b)
		}
		return b, err
	}
	want, err := get(endpoint{addr: s.jiraAt, token: s.rig.JiraToken})
	if err != nil {
		return err
	}
	got, err := get(ep)
	if err != nil {
		return err
	}
	if ep.prefix != "" {
		// Through the broker, the agent points Jira's API links at the
		// gateway (issue 11): the answer must be the stand-in's with those
		// links, and nothing else, changed.
		want = bytes.ReplaceAll(want, []byte("http://"+s.jiraAt+"/rest/"), []byte(ep.url("/rest/")))
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the issue through %s (%d bytes) differs from the stand-in's (%d bytes)", ep.name, len(got), len(want))
	}
	return nil
}
