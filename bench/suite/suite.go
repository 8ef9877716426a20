// Package suite is the benchmark behind `make bench`: it starts the Jira
// stand-in, the gateway and the agent as real processes on loopback, once
// per transport, measures each figure through them and against the
// stand-in called directly in the same run, and reports a Markdown table
// and JSON.
package suite

import (
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

	"github.com/oxsecurity/oxbroker/bench/frp"
	"github.com/oxsecurity/oxbroker/bench/load"
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
