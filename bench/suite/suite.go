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
	"github.com/oxsecurity/oxbroker/bench/frp"
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
	Reconnect    int // simulated agents that must come back after a restart; 0: all
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
	// Frp adds frp's paths (frp.Paths) to the request figures, built
	// into FrpCacheDir (frp.DefaultCacheDir when empty).
	Frp         bool
	FrpCacheDir string
	// IdleCPUFor is how long the gateway's CPU time is read while it
	// holds IdleSessions idle sessions (their keepalives).
	IdleCPUFor time.Duration
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
		IdleSessions: 10_000,
		Reconnect:    0, // all of them
		Settle:       3 * time.Second,
		IdleCPUFor:   5 * time.Second,
		LogLevel:     "info",
		Progress:     os.Stderr,
		Cluster:      true,
		Frp:          true,

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
	var notes []string
	if cfg.IdleSessions > 0 {
		n, why, err := fitFileLimit(cfg.IdleSessions)
		if err != nil {
			return nil, err
		}
		if why != "" {
			notes = append(notes, why)
			fmt.Fprintf(cfg.Progress, "bench: %s\n", why)
			cfg.Reconnect = min(cfg.Reconnect, n)
			cfg.IdleSessions = n
		}
		if cfg.Reconnect <= 0 {
			cfg.Reconnect = cfg.IdleSessions
		}
		if cfg.IdleSessions < cfg.Reconnect {
			return nil, fmt.Errorf("%d idle sessions cannot leave %d agents for the restart", cfg.IdleSessions, cfg.Reconnect)
		}
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
		Notes:      notes,
	}
	s.logf("machine: %d CPUs (%s), load average %s", res.Machine.CPUs, res.Machine.CPUModel, res.Machine.LoadBefore)
	s.logf("building the %d MiB upload", cfg.UploadSize>>20)
	if s.upload, err = load.NewUpload(cfg.UploadSize); err != nil {
		return nil, err
	}
	if err := s.startJira(ctx); err != nil {
		return nil, err
	}

	// frp is built (or found in its cache) before anything is measured,
	// so that a build does not share the machine with a measurement.
	var frpBins *frp.Binaries
	if cfg.Frp && !cfg.SkipRequests {
		b, err := frp.Build{CacheDir: cfg.FrpCacheDir, Logf: s.logf}.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			res.FrpErrors = map[string]string{"build": err.Error()}
			s.logf("%v; the run goes on without frp (-frp=false skips it)", err)
		default:
			frpBins = &b
			res.FrpVersion = frp.Version
			s.logf("frp %s: %s, %s", frp.Version, b.Frps, b.Frpc)
		}
	}

	res.Direct = &Figures{}
	direct := endpoint{name: "direct", addr: s.jiraAt, token: r.JiraToken}
	if !cfg.SkipRequests {
		s.logf("direct: the stand-in at %s", s.jiraAt)
		if res.Direct, err = s.measure(ctx, direct, []*proc{s.jira}); err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
		for _, p := range requestPaths(cfg.Transports, frpBins != nil) {
			// The direct rate again, next to this path's: the ratio is
			// taken against the median of the direct runs, so that a
			// burst of other work on the machine during one of them
			// moves it less.
			rps, err := s.directRPS(direct)
			if err != nil {
				return nil, fmt.Errorf("direct: %w", err)
			}
			res.Direct.RPSRuns = append(res.Direct.RPSRuns, rps)
			if !p.frp {
				if res.Transports[p.name], err = s.throughBroker(ctx, p.name); err != nil {
					return nil, fmt.Errorf("%s: %w", p.name, err)
				}
				continue
			}
			// frp is the yardstick, not the subject: a failure of it is
			// reported and the run goes on.
			f, err := s.throughFrp(ctx, *frpBins, p.name)
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case err != nil:
				if res.FrpErrors == nil {
					res.FrpErrors = map[string]string{}
				}
				res.FrpErrors[p.name] = err.Error()
				s.logf("frp %s: %v; the run goes on", p.name, err)
			default:
				if res.Frp == nil {
					res.Frp = map[string]*Figures{}
				}
				res.Frp[p.name] = f
			}
		}
	}
	for _, t := range cfg.Transports {
		f := res.Transports[t]
		if f == nil {
			f = &Figures{}
			res.Transports[t] = f
		}
		if cfg.IdleSessions > 0 {
			if err := s.idle(ctx, t, f); err != nil {
				return nil, fmt.Errorf("%s idle sessions: %w", t, err)
			}
		}
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

// requestPath is one way through to the stand-in whose request figures
// are measured: the broker on a transport, or frp on one of its paths.
type requestPath struct {
	name string // tcp, quic; for frp also http
	frp  bool
}

// requestPaths orders the runs so that each of the broker's transports
// is measured next to the frp path it is compared with (tcp beside frp
// tcp, quic beside frp quic), which a slow drift of the machine's load
// then moves alike; frp's http path, compared with nothing of ours by a
// target, comes last. frp's tcp and http paths run when tcp is among
// the transports, its quic path when quic is.
func requestPaths(transports []string, withFrp bool) []requestPath {
	var out []requestPath
	for _, t := range transports {
		out = append(out, requestPath{name: t})
		if withFrp {
			out = append(out, requestPath{name: t, frp: true})
		}
	}
	if withFrp && slices.Contains(transports, "tcp") {
		out = append(out, requestPath{name: frp.PathHTTP, frp: true})
	}
	return out
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
	// host is the Host header when it is not addr: through frp, the
	// stand-in's own address, as a raw tunnel's caller names the server
	// behind it (the stand-in writes the Host into its answers' links,
	// which must come out as directly for sameAnswer).
	host string
}

func (e endpoint) url(path string) string { return "http://" + e.addr + e.prefix + path }

// header returns the request's headers; without a token, no
// Authorization (frp's http path sets it on the way).
func (e endpoint) header() map[string]string {
	h := map[string]string{
		"Accept":     "application/json",
		"User-Agent": "oxbroker-bench",
	}
	if e.token != "" {
		h["Authorization"] = "Bearer " + e.token
	}
	if e.host != "" {
		h["Host"] = e.host
	}
	return h
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
// stand-in serves it directly.
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
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the issue through %s (%d bytes) differs from the stand-in's (%d bytes)", ep.name, len(got), len(want))
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
		return err
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
