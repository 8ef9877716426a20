package suite

import (
	"encoding/json"
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
	UDPBufferWarnings []string `json:"udp_buffer_warnings"`
	// Transports are the broker's paths, by transport (tcp, quic).
	Transports map[string]*Figures `json:"transports"`
	// Frp are frp's paths (frp.Paths: tcp, quic, http), measured in the
	// same run with the same loads; GatewayCPUPerRequestUs and
	// GatewayPeakRSSMiB are frps's, the Agent ones frpc's.
	Frp        map[string]*Figures `json:"frp,omitempty"`
	FrpVersion string              `json:"frp_version,omitempty"`
	// FrpErrors says why frp, or one of its paths, was not measured:
	// "build" or the path, to the error.
	FrpErrors map[string]string `json:"frp_errors,omitempty"`
	// Notes are what the run changed from what it was asked, and why
	// (fewer simulated agents than -sessions, for instance).
	Notes []string `json:"notes,omitempty"`
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

	// The scale part: a fresh gateway holding IdleSessions simulated
	// agents, which took ConnectSeconds to connect (growRamp at once).
	IdleSessions   int     `json:"idle_sessions,omitempty"`
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	// GatewaySessionsHeld is the gateway's count of sessions when its
	// memory was read; IdleSessionKiB is per session of it.
	GatewaySessionsHeld   int     `json:"gateway_sessions_held,omitempty"`
	GatewayBaseRSSMiB     float64 `json:"gateway_base_rss_mib,omitempty"`
	GatewaySessionsRSSMiB float64 `json:"gateway_sessions_rss_mib,omitempty"`
	IdleSessionKiB        float64 `json:"idle_session_kib,omitempty"`
	// The gateway's CPU while the sessions only exchange keepalives, over
	// IdleCPUWindowSeconds: a share of one core, and per session.
	IdleCPUWindowSeconds      float64 `json:"idle_cpu_window_seconds,omitempty"`
	IdleCPUPercent            float64 `json:"idle_cpu_percent_of_core,omitempty"`
	IdleCPUUsPerSessionSecond float64 `json:"idle_cpu_us_per_session_second,omitempty"`

	// ReconnectBack of ReconnectAgents were welcomed again by the
	// restarted gateway within ReconnectSeconds of its kill: all of them,
	// or fewer when the wait's bound ran out first.
	ReconnectAgents         int     `json:"reconnect_agents,omitempty"`
	ReconnectBack           int     `json:"reconnect_back,omitempty"`
	ReconnectSeconds        float64 `json:"reconnect_seconds,omitempty"`
	GatewayRestartSeconds   float64 `json:"gateway_restart_seconds,omitempty"`
	ReconnectFailedAttempts int     `json:"reconnect_failed_attempts,omitempty"`
	// ReconnectGatewayCPUSeconds is the CPU time the restarted gateway
	// used until every agent was back.
	ReconnectGatewayCPUSeconds float64 `json:"reconnect_gateway_cpu_seconds,omitempty"`

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
	IdleCPUFor   string `json:"idle_cpu_for"`
	Backoff      string `json:"reconnect_backoff"`
	LogLevel     string `json:"log_level"`
	Frp          bool   `json:"frp"`
}

func settingsOf(c Config) Settings {
	return Settings{
		Conns: c.Conns, Repeats: c.Repeats, LoadFor: c.LoadFor.String(), LatencyFor: c.LatencyFor.String(), MaxRequests: c.MaxRequests,
		DownloadSize: c.DownloadSize, UploadSize: c.UploadSize, Transfers: c.Transfers,
		IdleSessions: c.IdleSessions, Reconnect: c.Reconnect, IdleCPUFor: c.IdleCPUFor.String(), Frp: c.Frp,
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
