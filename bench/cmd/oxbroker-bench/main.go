// Command oxbroker-bench is the benchmark behind `make bench`: it runs the
// built binaries (the Jira stand-in, the gateway and the agent) as
// processes on loopback, once per transport, and frp on the same loads,
// prints Markdown tables of the figures against the stand-in called
// directly and against frp, and writes them as JSON. docs/benchmarks.md
// explains the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/oxsecurity/oxbroker/bench/frp"
	"github.com/oxsecurity/oxbroker/bench/suite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "oxbroker-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg := suite.Defaults()
	var transports string
	flag.StringVar(&cfg.BinDir, "bin", cfg.BinDir, "`dir`ectory of oxbroker, oxbroker-gateway and jira-standin")
	flag.StringVar(&cfg.WorkDir, "dir", cfg.WorkDir, "work `dir`ectory for configs and process logs (emptied first)")
	out := flag.String("out", ".bench/results.json", "write the results as JSON to this `file`")
	flag.StringVar(&transports, "transports", strings.Join(cfg.Transports, ","), "transports to measure, comma-separated")
	flag.DurationVar(&cfg.LoadFor, "load-for", cfg.LoadFor, "length of the throughput run at -conns")
	flag.DurationVar(&cfg.LatencyFor, "latency-for", cfg.LatencyFor, "length of the run on one connection")
	flag.IntVar(&cfg.Conns, "conns", cfg.Conns, "concurrent connections of the throughput run")
	flag.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "throughput runs per endpoint; the median counts")
	flag.IntVar(&cfg.IdleSessions, "sessions", cfg.IdleSessions, "idle simulated agents held by the gateway")
	flag.IntVar(&cfg.Reconnect, "reconnect", cfg.Reconnect, "simulated agents that reconnect after a gateway restart (0: all of -sessions)")
	flag.DurationVar(&cfg.IdleCPUFor, "idle-cpu-for", cfg.IdleCPUFor, "how long the gateway's CPU is read while it holds -sessions idle sessions (0 skips it)")
	flag.BoolVar(&cfg.Frp, "frp", cfg.Frp, "measure frp "+frp.Version+" on the same loads (built once into -frp-cache; needs the Go module proxy the first time)")
	flag.StringVar(&cfg.FrpCacheDir, "frp-cache", frp.DefaultCacheDir(), "`dir`ectory where frp's module copy and binaries are kept")
	flag.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level of the gateway and the agent")
	flag.BoolVar(&cfg.SkipRequests, "skip-requests", false, "measure only the idle sessions and the restart")
	flag.BoolVar(&cfg.Cluster, "cluster", cfg.Cluster, "measure forwarding between two gateway replicas on Redis (needs redis-server)")
	flag.StringVar(&cfg.ClusterTransport, "cluster-transport", cfg.ClusterTransport, "the agent's transport in the cluster part")
	flag.Func("env", "`NAME=value` added to the environment of gateway and agent (repeatable; for experiments such as GOGC=200)",
		func(v string) error {
			if !strings.Contains(v, "=") {
				return fmt.Errorf("want NAME=value")
			}
			cfg.Env = append(cfg.Env, v)
			return nil
		})
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	cfg.Transports = strings.Split(transports, ",")
	for _, t := range cfg.Transports {
		if t != "tcp" && t != "quic" {
			return fmt.Errorf("-transports: unknown transport %q (tcp, quic)", t)
		}
	}
	for _, b := range []string{"oxbroker", "oxbroker-gateway", "jira-standin"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return fmt.Errorf("%w (run `make build` first)", err)
		}
	}

	res, err := suite.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted")
		}
		return fmt.Errorf("%w (process logs in %s)", err, cfg.WorkDir)
	}
	res.Commit = suite.Commit()
	// Under go run, os.Args[0] is a temporary path; its name is enough.
	res.Command = strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " ")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := res.WriteJSON(*out); err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(res.Table())
	if res.Forwarding != nil {
		fmt.Println()
		fmt.Print(res.Forwarding.Table())
	}
	for _, w := range res.UDPBufferWarnings {
		fmt.Println("\nquic-go:", w)
	}
	frpUsed := "frp not measured"
	if res.FrpVersion != "" {
		frpUsed = "frp " + res.FrpVersion
	}
	fmt.Printf("\n%s, %d CPUs (%s), load average %s before and %s after; net.core.rmem_max %s, wmem_max %s;\ncommit %s; %s; took %s; JSON in %s\n",
		res.Date, res.Machine.CPUs, res.Machine.CPUModel, res.Machine.LoadBefore, res.Machine.LoadAfter,
		res.Machine.RmemMax, res.Machine.WmemMax, res.Commit, frpUsed, res.Elapsed, *out)
	return nil
}
