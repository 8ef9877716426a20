package suite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/bench/load"
	"github.com/oxsecurity/oxbroker/bench/procstat"
)

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
