// Package suite is the benchmark behind `make bench`: it starts the Jira
// stand-in, the gateway and the agent as real processes on loopback, once
// per transport, measures each figure through them and against the
// stand-in called directly in the same run, and reports a Markdown table
// and JSON.
package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/bench/agentsim"
	"github.com/oxsecurity/oxbroker/bench/load"
	"github.com/oxsecurity/oxbroker/bench/procstat"
	"github.com/oxsecurity/oxbroker/bench/rig"
)

// Config says what to run and how long. Every load loop is bounded both
// in requests and in time.
type Config struct {
	BinDir     string   // holds oxbroker, oxbroker-gateway, jira-standin
	WorkDir    string   // configs, certificates and process logs
	Transports []string // tcp, quic

	Conns       int           // concurrent connections of the throughput run
	Warmup      time.Duration // before the throughput runs, same concurrency
	LoadFor     time.Duration // each throughput run (and its latencies)
	Repeats     int           // throughput runs; the median counts
	LatencyFor  time.Duration // the run on one connection
	MaxRequests int           // bound of each run

	DownloadSize int64 // the synthetic attachment downloaded
	UploadSize   int64 // the file uploaded
	Transfers    int   // downloads and uploads each; the median counts

	IdleSessions int // simulated agents held by a fresh gateway; 0 skips that part
	Reconnect    int // simulated agents that must come back after a restart
	// Settle is how long the gateway holds the idle sessions before its
	// memory is read, so that handshake garbage has been collected.
	Settle time.Duration

	LogLevel string    // of the gateway and the agent
	Progress io.Writer // one line per step
	// Env is added to the environment of the gateway and the agent, for
	// experiments such as GOGC=200.
	Env []string
	// SkipRequests leaves out the request, latency and transfer figures.
	SkipRequests bool
	// Cluster adds the cost of forwarding between two gateway replicas
	// sharing a Redis registry (needs redis-server), on ClusterTransport.
	Cluster          bool
	ClusterTransport string
}

// Defaults returns the configuration of `make bench`.
func Defaults() Config {
	return Config{
		BinDir:       "bin",
		WorkDir:      ".bench/run",
		Transports:   []string{"tcp", "quic"},
		Conns:        32,
		Warmup:       time.Second,
		LoadFor:      3 * time.Second,
		Repeats:      3,
		LatencyFor:   2 * time.Second,
		MaxRequests:  400_000,
		DownloadSize: 100 << 20,
		UploadSize:   20 << 20,
		Transfers:    3,
		IdleSessions: 2000,
		Reconnect:    1000,
		Settle:       3 * time.Second,
		LogLevel:     "info",
		Progress:     os.Stderr,
		Cluster:      true,

		ClusterTransport: "tcp",
	}
}

// The stand-in's seeded data: issue BenchIssue (about 4 KiB of JSON) is
// the one requested under load; AttachIssue holds the synthetic
// attachment and takes the uploads.
const (
	issueKey    = "BENCH-1"
	attachIssue = "BENCH-2"
	// attachID is the id the stand-in gives its first attachment.
	attachID = "10000"
)

type suite struct {
	cfg    Config
	rig    *rig.Rig
	procs  []*proc
	jira   *proc
	jiraAt string // host:port
	upload *load.Upload
	bulk   *http.Client
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	start := time.Now()
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Repeats < 1 || cfg.Conns < 1 || cfg.Transfers < 1 {
		return nil, errors.New("repeats, conns and transfers must be at least 1")
	}
	if cfg.IdleSessions > 0 && cfg.IdleSessions < cfg.Reconnect {
		return nil, fmt.Errorf("%d idle sessions cannot leave %d agents for the restart", cfg.IdleSessions, cfg.Reconnect)
	}
	if err := os.RemoveAll(cfg.WorkDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.WorkDir, "logs"), 0o700); err != nil {
		return nil, err
	}
	r, err := rig.New(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	s := &suite{cfg: cfg, rig: r, bulk: load.NewBulkClient()}
	defer s.cleanup()

	res := &Results{
		Date:       start.UTC().Format(time.RFC3339),
		Machine:    machine(),
		Settings:   settingsOf(cfg),
		Transports: map[string]*Figures{},
	}
	s.logf("machine: %d CPUs (%s), load average %s", res.Machine.CPUs, res.Machine.CPUModel, res.Machine.LoadBefore)
	if err := raiseFileLimit(2*cfg.IdleSessions + 1024); err != nil {
		return nil, err
	}
	s.logf("building the %d MiB upload", cfg.UploadSize>>20)
	if s.upload, err = load.NewUpload(cfg.UploadSize); err != nil {
		return nil, err
	}
	if err := s.startJira(ctx); err != nil {
		return nil, err
	}

	res.Direct = &Figures{}
	if !cfg.SkipRequests {
		s.logf("direct: the stand-in at %s", s.jiraAt)
		direct := endpoint{name: "direct", addr: s.jiraAt, token: r.JiraToken}
		if res.Direct, err = s.measure(ctx, direct, []*proc{s.jira}); err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
	}
	direct := endpoint{name: "direct", addr: s.jiraAt, token: r.JiraToken}
	for _, t := range cfg.Transports {
		f := &Figures{}
		if !cfg.SkipRequests {
			// The direct rate again, next to this transport's: the ratio
			// is taken against the median of the direct runs, so that a
			// burst of other work on the machine during one of them
			// moves it less.
			rps, err := s.directRPS(direct)
			if err != nil {
				return nil, fmt.Errorf("direct: %w", err)
			}
			res.Direct.RPSRuns = append(res.Direct.RPSRuns, rps)
			if f, err = s.throughBroker(ctx, t); err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
		}
		if cfg.IdleSessions > 0 {
			if err := s.idle(ctx, t, f); err != nil {
				return nil, fmt.Errorf("%s idle sessions: %w", t, err)
			}
		}
		res.Transports[t] = f
	}
	if len(res.Direct.RPSRuns) > 0 {
		res.Direct.RPS = median(res.Direct.RPSRuns)
		s.logf("direct: GET issue at c%d: median %.0f req/s of %s", cfg.Conns, res.Direct.RPS, rounded(res.Direct.RPSRuns))
	}
	if cfg.Cluster && !cfg.SkipRequests {
		if res.Forwarding, err = s.forwarding(ctx, cfg.ClusterTransport); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	res.Machine.LoadAfter = loadAverage()
	res.UDPBufferWarnings = s.udpBufferWarnings()
	res.Elapsed = time.Since(start).Round(time.Second).String()
	return res, nil
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Progress, "bench: "+format+"\n", args...)
}

func (s *suite) path(name string) string { return filepath.Join(s.cfg.WorkDir, name) }

// logPath is where a process's output goes: a folder of its own, because
// the agent watches the folder of its config for changes (reload), and
// every log line written beside the config would wake it.
func (s *suite) logPath(name string) string { return filepath.Join(s.cfg.WorkDir, "logs", name+".log") }

func (s *suite) bin(name string) string { return filepath.Join(s.cfg.BinDir, name) }

func (s *suite) cleanup() {
	for _, p := range s.procs {
		p.kill()
	}
}

func (s *suite) startJira(ctx context.Context) error {
	addrFile := s.path("jira.addr")
	p, err := s.startProc("jira-standin", s.bin("jira-standin"),
		[]string{"JIRA_STANDIN_BEARER_TOKEN=" + s.rig.JiraToken},
		"--listen", "127.0.0.1:0", "--addr-file", addrFile,
		"--seed-issue", attachIssue, "--attachment-size", fmt.Sprint(s.cfg.DownloadSize))
	if err != nil {
		return err
	}
	s.jira = p
	s.jiraAt, err = waitFile(ctx, p, addrFile, 10*time.Second)
	return err
}

// endpoint is one way to reach the stand-in: directly, or through the
// gateway's connector API.
type endpoint struct {
	name   string
	addr   string // host:port
	prefix string // "" or /b/{broker}/{site}
	token  string // Bearer token: Jira's directly, the connector's via the gateway
}

func (e endpoint) url(path string) string { return "http://" + e.addr + e.prefix + path }

func (e endpoint) header() map[string]string {
	return map[string]string{
		"Authorization": "Bearer " + e.token,
		"Accept":        "application/json",
		"User-Agent":    "oxbroker-bench",
	}
}

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
	f.GatewayCPUPerRequestUs, f.AgentCPUPerRequestUs = f.cpuPerRequest[0], f.cpuPerRequest[1]
	f.CPUPerRequestUs = f.GatewayCPUPerRequestUs + f.AgentCPUPerRequestUs
	for i, p := range []*proc{gw, ag} {
		m, err := procstat.Mem(p.pid())
		if err != nil {
			return nil, err
		}
		peak := float64(m.Peak) / (1 << 20)
		if i == 0 {
			f.GatewayPeakRSSMiB = peak
		} else {
			f.AgentPeakRSSMiB = peak
		}
	}
	s.logf("%s: CPU %.1f µs/request (gateway %.1f, agent %.1f); peak RSS gateway %.1f MiB, agent %.1f MiB",
		transport, f.CPUPerRequestUs, f.GatewayCPUPerRequestUs, f.AgentCPUPerRequestUs, f.GatewayPeakRSSMiB, f.AgentPeakRSSMiB)
	return f, nil
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

// sameAnswer checks that the issue comes back through the broker exactly
// as the stand-in serves it directly.
func (s *suite) sameAnswer(ctx context.Context, ep endpoint) error {
	get := func(ep endpoint) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", ep.url("/rest/api/3/issue/"+issueKey), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range ep.header() {
			req.Header.Set(k, v)
		}
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
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the issue through the broker (%d bytes) differs from the stand-in's (%d bytes)", len(got), len(want))
	}
	return nil
}

// measure runs the request, latency and transfer figures against ep;
// procs are the processes whose CPU time per request is reported.
func (s *suite) measure(ctx context.Context, ep endpoint, procs []*proc) (*Figures, error) {
	f := &Figures{}
	c := s.cfg
	pool := load.NewPool(ep.addr, c.Conns)
	defer pool.Close()
	req := load.Request(ep.addr, ep.prefix+"/rest/api/3/issue/"+issueKey, ep.header())

	if _, err := pool.Run(load.Run{Request: req, Conns: c.Conns, Max: c.MaxRequests, For: c.Warmup}); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	// Repeats runs at Conns connections; each figure is the median of
	// its runs, so that a burst of other work on the machine during one
	// run moves it less.
	var (
		p50, p99 []float64
		cpu      = make([][]float64, len(procs)) // µs per request, by process
		reads    = make([][]float64, len(procs))
		writes   = make([][]float64, len(procs))
	)
	for k := range c.Repeats {
		cpu0, io0, err := usage(procs)
		if err != nil {
			return nil, err
		}
		r, err := pool.Run(load.Run{Request: req, Conns: c.Conns, Max: c.MaxRequests, For: c.LoadFor})
		if err != nil {
			return nil, fmt.Errorf("GET at c%d: %w", c.Conns, err)
		}
		cpu1, io1, err := usage(procs)
		if err != nil {
			return nil, err
		}
		n := float64(r.Requests)
		f.RPSRuns = append(f.RPSRuns, r.RPS)
		p50, p99 = append(p50, ms(r.P50)), append(p99, ms(r.P99))
		f.Requests += r.Requests
		f.Errors += r.Errors
		var us []string
		for i := range procs {
			cpu[i] = append(cpu[i], float64((cpu1[i]-cpu0[i]).Microseconds())/n)
			reads[i] = append(reads[i], float64(io1[i].Reads-io0[i].Reads)/n)
			writes[i] = append(writes[i], float64(io1[i].Writes-io0[i].Writes)/n)
			us = append(us, fmt.Sprintf("%s %.0f", procs[i].name, cpu[i][k]))
		}
		s.logf("%s: GET issue at c%d, run %d of %d: %.0f req/s, p50 %.3f ms, p99 %.3f ms, %d errors; CPU µs/request: %s",
			ep.name, c.Conns, k+1, c.Repeats, r.RPS, ms(r.P50), ms(r.P99), r.Errors, strings.Join(us, ", "))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	f.RPS, f.P50Ms, f.P99Ms = median(f.RPSRuns), median(p50), median(p99)
	for i := range procs {
		f.cpuPerRequest = append(f.cpuPerRequest, median(cpu[i]))
		f.SyscallsPerRequest = append(f.SyscallsPerRequest, SyscallRate{
			Process: procs[i].name, Reads: median(reads[i]), Writes: median(writes[i]),
		})
		m, err := procstat.Mem(procs[i].pid())
		if err != nil {
			return nil, err
		}
		f.PeakRSSAfterRequestsMiB = append(f.PeakRSSAfterRequestsMiB, float64(m.Peak)/(1<<20))
	}
	for _, sc := range f.SyscallsPerRequest {
		s.logf("%s: %s: %.1f read and %.1f write system calls per request", ep.name, sc.Process, sc.Reads, sc.Writes)
	}

	r1, err := pool.Run(load.Run{Request: req, Conns: 1, Max: c.MaxRequests, For: c.LatencyFor})
	if err != nil {
		return nil, fmt.Errorf("GET at c1: %w", err)
	}
	f.RPS1, f.P50C1Ms, f.P99C1Ms = r1.RPS, ms(r1.P50), ms(r1.P99)
	f.Errors += r1.Errors
	s.logf("%s: GET issue at c1: %.0f req/s, p50 %.3f ms, p99 %.3f ms", ep.name, f.RPS1, f.P50C1Ms, f.P99C1Ms)

	var down, up []float64
	for range c.Transfers {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t, err := load.Download(ctx, s.bulk, ep.url("/rest/api/3/attachment/content/"+attachID), ep.header(), c.DownloadSize)
		if err != nil {
			return nil, err
		}
		down = append(down, t.MBps())
		if t, err = s.upload.Send(ctx, s.bulk, ep.url("/rest/api/3/issue/"+attachIssue+"/attachments"), ep.header()); err != nil {
			return nil, err
		}
		up = append(up, t.MBps())
	}
	f.DownloadMBps, f.UploadMBps = median(down), median(up)
	s.logf("%s: download %d MiB: %.0f MB/s %s; upload %d MiB: %.0f MB/s %s", ep.name,
		c.DownloadSize>>20, f.DownloadMBps, rounded(down), c.UploadSize>>20, f.UploadMBps, rounded(up))
	if len(procs) == 1 {
		f.CPUPerRequestUs = f.cpuPerRequest[0]
	}
	return f, nil
}

// idle measures the gateway's memory per idle session with IdleSessions
// simulated agents, then the time for Reconnect of them to be back after
// the gateway is killed and started again.
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
	defer func() { gw.stop() }()
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
	if err := fleet.Grow(ctx, c.IdleSessions, 64, 2*time.Minute); err != nil {
		return err
	}
	if _, err := waitSessions(ctx, gw, addrs.Admin, transport, c.IdleSessions, 30*time.Second); err != nil {
		return err
	}
	s.logf("%s: %d simulated agents connected in %.1f s", transport, c.IdleSessions, time.Since(t0).Seconds())
	if err := pause(ctx, gw, c.Settle); err != nil {
		return err
	}
	m1, err := procstat.Mem(gw.pid())
	if err != nil {
		return err
	}
	f.IdleSessions = c.IdleSessions
	f.GatewayBaseRSSMiB = float64(m0.RSS) / (1 << 20)
	f.IdleSessionKiB = float64(m1.RSS-m0.RSS) / 1024 / float64(c.IdleSessions)
	s.logf("%s: gateway RSS %.1f MiB idle, %.1f MiB with %d sessions: %.1f KiB per session",
		transport, float64(m0.RSS)/(1<<20), float64(m1.RSS)/(1<<20), c.IdleSessions, f.IdleSessionKiB)

	fleet.Shrink(c.IdleSessions - c.Reconnect)
	if _, err := waitSessions(ctx, gw, addrs.Admin, transport, c.Reconnect, 30*time.Second); err != nil {
		return err
	}
	failed := fleet.Failures()
	killed := time.Now()
	gw.kill()
	gw, err = s.startGateway(ctx, name, addrs)
	if err != nil {
		return err
	}
	ready := time.Since(killed)
	back, err := waitSessions(ctx, gw, addrs.Admin, transport, c.Reconnect, time.Minute)
	if err != nil {
		return err
	}
	f.ReconnectAgents = c.Reconnect
	f.ReconnectSeconds = back.Sub(killed).Seconds()
	f.GatewayRestartSeconds = ready.Seconds()
	f.ReconnectFailedAttempts = fleet.Failures() - failed
	s.logf("%s: %d agents back %.2f s after the gateway was killed (it was ready again after %.2f s; %d failed attempts)",
		transport, c.Reconnect, f.ReconnectSeconds, f.GatewayRestartSeconds, f.ReconnectFailedAttempts)
	return nil
}

// udpBufferWarnings returns the lines in which quic-go said it could not
// get the UDP socket buffers it wants (7 MiB; net.core.rmem_max and
// wmem_max bound what it gets).
func (s *suite) udpBufferWarnings() []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(s.cfg.WorkDir, "logs", "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "buffer size") && strings.Contains(line, "increase") {
				out = append(out, filepath.Base(f)+": "+line)
				break
			}
		}
	}
	return out
}

// directRPS measures the stand-in's request rate at Conns connections
// again, after a short warm-up.
func (s *suite) directRPS(ep endpoint) (float64, error) {
	c := s.cfg
	pool := load.NewPool(ep.addr, c.Conns)
	defer pool.Close()
	req := load.Request(ep.addr, ep.prefix+"/rest/api/3/issue/"+issueKey, ep.header())
	if _, err := pool.Run(load.Run{Request: req, Conns: c.Conns, Max: c.MaxRequests, For: c.Warmup / 2}); err != nil {
		return 0, err
	}
	r, err := pool.Run(load.Run{Request: req, Conns: c.Conns, Max: c.MaxRequests, For: c.LoadFor})
	if err != nil {
		return 0, err
	}
	s.logf("direct: GET issue at c%d: %.0f req/s", c.Conns, r.RPS)
	return r.RPS, nil
}

// usage reads the CPU time and I/O system call counts of procs.
func usage(procs []*proc) ([]time.Duration, []procstat.Syscalls, error) {
	cpu := make([]time.Duration, len(procs))
	io := make([]procstat.Syscalls, len(procs))
	for i, p := range procs {
		var err error
		if cpu[i], err = procstat.CPU(p.pid()); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		if io[i], err = procstat.IO(p.pid()); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return cpu, io, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func rounded(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// errFileLimit explains how to give the benchmark enough descriptors.
var errFileLimit = errors.New("raise the limit with `ulimit -n` (as root: also the hard limit, or LimitNOFILE for a service)")
