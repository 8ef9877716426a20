package suite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Results is a whole run, as written to results.json.
type Results struct {
	Date     string   `json:"date"`
	Commit   string   `json:"commit"`
	Command  string   `json:"command"`
	Elapsed  string   `json:"elapsed"`
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	// Direct is the stand-in called directly; its CPU figure is the
	// stand-in's own CPU time per request.
	Direct *Figures `json:"direct"`
	// UDPBufferWarnings are quic-go's complaints, in the processes' logs,
	// that the UDP buffers are smaller than it wants (docs/benchmarks.md).
	UDPBufferWarnings []string            `json:"udp_buffer_warnings"`
	Transports        map[string]*Figures `json:"transports"`
	// Forwarding is the cluster part (cluster.go); nil when skipped.
	Forwarding *Forwarding `json:"forwarding,omitempty"`
}

// Figures are the measurements of one way to reach the stand-in. Latency
// in ms, rates in MB/s (10⁶ bytes), memory in MiB or KiB, CPU time in µs.
type Figures struct {
	RPS float64 `json:"rps_c32"`
	// RPSRuns are the runs at c32; RPS, P50Ms and P99Ms are medians
	// of them. Direct has one more run before each transport's.
	RPSRuns  []float64 `json:"rps_c32_runs,omitempty"`
	P50Ms    float64   `json:"p50_ms_c32"`
	P99Ms    float64   `json:"p99_ms_c32"`
	Requests int       `json:"requests_c32"`
	RPS1     float64   `json:"rps_c1"`
	P50C1Ms  float64   `json:"p50_ms_c1"`
	P99C1Ms  float64   `json:"p99_ms_c1"`
	Errors   int       `json:"errors"`

	DownloadMBps float64 `json:"download_mbps"`
	UploadMBps   float64 `json:"upload_mbps"`

	CPUPerRequestUs        float64 `json:"cpu_us_per_request"`
	GatewayCPUPerRequestUs float64 `json:"gateway_cpu_us_per_request,omitempty"`
	AgentCPUPerRequestUs   float64 `json:"agent_cpu_us_per_request,omitempty"`
	// SyscallsPerRequest are the read and write system calls per request
	// of each measured process (from /proc/<pid>/io) during the c32 run.
	SyscallsPerRequest []SyscallRate `json:"syscalls_per_request"`
	// PeakRSSAfterRequestsMiB is the peak RSS of each measured process
	// after the c32 run, before the bulk transfers.
	PeakRSSAfterRequestsMiB []float64 `json:"peak_rss_mib_after_requests"`
	GatewayPeakRSSMiB       float64   `json:"gateway_peak_rss_mib,omitempty"`
	AgentPeakRSSMiB         float64   `json:"agent_peak_rss_mib,omitempty"`

	IdleSessions      int     `json:"idle_sessions,omitempty"`
	GatewayBaseRSSMiB float64 `json:"gateway_base_rss_mib,omitempty"`
	IdleSessionKiB    float64 `json:"idle_session_kib,omitempty"`

	ReconnectAgents         int     `json:"reconnect_agents,omitempty"`
	ReconnectSeconds        float64 `json:"reconnect_seconds,omitempty"`
	GatewayRestartSeconds   float64 `json:"gateway_restart_seconds,omitempty"`
	ReconnectFailedAttempts int     `json:"reconnect_failed_attempts,omitempty"`

	cpuPerRequest []float64 // per measured process, in order
}

// SyscallRate is one process's I/O system calls per request.
type SyscallRate struct {
	Process string  `json:"process"`
	Reads   float64 `json:"reads"`
	Writes  float64 `json:"writes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	RmemMax    string `json:"net_core_rmem_max"`
	WmemMax    string `json:"net_core_wmem_max"`
}

// Settings are the run's bounds.
type Settings struct {
	Conns        int    `json:"conns"`
	Repeats      int    `json:"repeats"`
	LoadFor      string `json:"load_for"`
	LatencyFor   string `json:"latency_for"`
	MaxRequests  int    `json:"max_requests"`
	DownloadSize int64  `json:"download_bytes"`
	UploadSize   int64  `json:"upload_bytes"`
	Transfers    int    `json:"transfers"`
	IdleSessions int    `json:"idle_sessions"`
	Reconnect    int    `json:"reconnect_agents"`
	Backoff      string `json:"reconnect_backoff"`
	LogLevel     string `json:"log_level"`
}

func settingsOf(c Config) Settings {
	return Settings{
		Conns: c.Conns, Repeats: c.Repeats, LoadFor: c.LoadFor.String(), LatencyFor: c.LatencyFor.String(), MaxRequests: c.MaxRequests,
		DownloadSize: c.DownloadSize, UploadSize: c.UploadSize, Transfers: c.Transfers,
		IdleSessions: c.IdleSessions, Reconnect: c.Reconnect,
		Backoff:  "exponential, full jitter, 500ms to 30s (the protocol's)",
		LogLevel: c.LogLevel,
	}
}

// WriteJSON writes the results to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// target is a goal of the issue for one transport.
type target struct {
	kind  targetKind
	limit float64
}

type targetKind int

const (
	atLeastRatio targetKind = iota + 1 // value/direct ≥ limit
	atMostAbove                        // value - direct ≤ limit
	atMost                             // value ≤ limit
)

func (t target) String() string {
	switch t.kind {
	case atLeastRatio:
		return fmt.Sprintf("≥ %.2f×", t.limit)
	case atMostAbove:
		return fmt.Sprintf("≤ direct + %.2f ms", t.limit)
	case atMost:
		return fmt.Sprintf("≤ %g", t.limit)
	}
	return "—"
}

func (t target) met(v, direct float64) bool {
	switch t.kind {
	case atLeastRatio:
		return direct > 0 && v/direct >= t.limit
	case atMostAbove:
		return v-direct <= t.limit
	case atMost:
		return v <= t.limit
	}
	return true
}

// compare says how a row relates a transport's value to direct's.
type compare int

const (
	noCompare compare = iota
	ratio             // value / direct, as 0.38×
	delta             // value - direct, as +0.21 ms
)

type row struct {
	name    string
	value   func(*Figures) float64
	format  string
	direct  bool // the direct column has a value
	compare compare
	targets map[string]target // by transport
}

func both(t target) map[string]target { return map[string]target{"tcp": t, "quic": t} }

var rows = []row{
	{"GET issue (4 KiB), req/s at c32", func(f *Figures) float64 { return f.RPS }, "%.0f", true, ratio,
		map[string]target{"tcp": {atLeastRatio, 0.35}, "quic": {atLeastRatio, 0.25}}},
	{"p50 latency at c1, ms", func(f *Figures) float64 { return f.P50C1Ms }, "%.3f", true, delta,
		map[string]target{"tcp": {atMostAbove, 0.25}, "quic": {atMostAbove, 0.35}}},
	{"p99 latency at c1, ms", func(f *Figures) float64 { return f.P99C1Ms }, "%.3f", true, delta, nil},
	{"p50 latency at c32, ms", func(f *Figures) float64 { return f.P50Ms }, "%.3f", true, delta, nil},
	{"p99 latency at c32, ms", func(f *Figures) float64 { return f.P99Ms }, "%.3f", true, delta, nil},
	{"100 MiB download, MB/s", func(f *Figures) float64 { return f.DownloadMBps }, "%.0f", true, ratio,
		map[string]target{"tcp": {atLeastRatio, 0.30}, "quic": {atLeastRatio, 0.12}}},
	{"20 MiB upload, MB/s", func(f *Figures) float64 { return f.UploadMBps }, "%.0f", true, ratio, nil},
	{"CPU per request, µs (gateway + agent; direct: the stand-in)", func(f *Figures) float64 { return f.CPUPerRequestUs }, "%.0f", true, noCompare,
		map[string]target{"tcp": {atMost, 100}, "quic": {atMost, 150}}},
	{"CPU per request, gateway alone, µs", func(f *Figures) float64 { return f.GatewayCPUPerRequestUs }, "%.0f", false, noCompare, nil},
	{"CPU per request, agent alone, µs", func(f *Figures) float64 { return f.AgentCPUPerRequestUs }, "%.0f", false, noCompare, nil},
	{"agent peak RSS (VmHWM), MiB", func(f *Figures) float64 { return f.AgentPeakRSSMiB }, "%.1f", false, noCompare, both(target{atMost, 40})},
	{"gateway peak RSS (VmHWM), MiB", func(f *Figures) float64 { return f.GatewayPeakRSSMiB }, "%.1f", false, noCompare, both(target{atMost, 60})},
	{"gateway memory per idle session, KiB", func(f *Figures) float64 { return f.IdleSessionKiB }, "%.1f", false, noCompare,
		map[string]target{"tcp": {atMost, 64}, "quic": {atMost, 160}}},
	{"agents back after a gateway restart, s", func(f *Figures) float64 { return f.ReconnectSeconds }, "%.2f", false, noCompare, both(target{atMost, 15})},
}

// Table returns the Markdown table of the run.
func (r *Results) Table() string {
	var ts []string
	for _, t := range []string{"tcp", "quic"} {
		if r.Transports[t] != nil {
			ts = append(ts, t)
		}
	}
	var b bytes.Buffer
	b.WriteString("| figure |")
	for _, t := range ts {
		b.WriteString(" " + t + " |")
	}
	b.WriteString(" direct | ratio to direct | target | met? |\n|---|")
	for range ts {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---|---|---|\n")
	for _, rw := range rows {
		measured := false
		for _, t := range ts {
			measured = measured || rw.value(r.Transports[t]) != 0
		}
		if !measured {
			continue // a part of the run that was skipped
		}
		name := rw.name
		switch {
		case strings.Contains(name, "idle session"):
			name = fmt.Sprintf("%s (of %d)", name, r.Settings.IdleSessions)
		case strings.Contains(name, "agents back"):
			name = fmt.Sprintf("%d %s", r.Settings.Reconnect, name)
		}
		b.WriteString("| " + name + " |")
		d := rw.value(r.Direct)
		var cmp, tgt, met []string
		for _, t := range ts {
			v := rw.value(r.Transports[t])
			fmt.Fprintf(&b, " "+rw.format+" |", v)
			label := ""
			if len(ts) > 1 {
				label = t + " "
			}
			switch rw.compare {
			case ratio:
				if d > 0 {
					cmp = append(cmp, fmt.Sprintf("%s%.2f×", label, v/d))
				}
			case delta:
				cmp = append(cmp, fmt.Sprintf("%s%+.3f ms", label, v-d))
			}
			if tg, ok := rw.targets[t]; ok {
				tgt = append(tgt, label+tg.String())
				verdict := "yes"
				if !tg.met(v, d) {
					verdict = "**no**"
				}
				met = append(met, label+verdict)
			}
		}
		if rw.direct {
			fmt.Fprintf(&b, " "+rw.format+" |", d)
		} else {
			b.WriteString(" — |")
		}
		for _, cell := range [][]string{cmp, tgt, met} {
			if len(cell) == 0 {
				b.WriteString(" — |")
			} else {
				b.WriteString(" " + strings.Join(cell, " · ") + " |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// machine describes this machine.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	m.RmemMax = readTrim("/proc/sys/net/core/rmem_max")
	m.WmemMax = readTrim("/proc/sys/net/core/wmem_max")
	return m
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Commit describes the source tree: `git describe --always --dirty`.
func Commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
