package suite

import (
	"fmt"
	"strings"
)

// The run prints three Markdown tables: the request figures of every
// path (the broker's and frp's, against the stand-in called directly),
// the scale of one gateway, and the targets of issues 14 and 6 with
// what this run measured for each.

// Table returns the three tables, with a line for each part of the run
// that was asked for and not measured.
func (r *Results) Table() string {
	var b strings.Builder
	for _, t := range []string{r.pathsTable(), r.scaleTable(), r.targetsTable()} {
		if t != "" {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(t)
		}
	}
	for _, k := range []string{"build", "tcp", "quic", "http"} {
		if e, ok := r.FrpErrors[k]; ok {
			what := "frp " + k
			if k == "build" {
				what = "frp"
			}
			fmt.Fprintf(&b, "\n%s: not measured: %s\n", what, e)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nnote: %s\n", n)
	}
	return b.String()
}

// path is a way to the stand-in, as the tables name it.
type path struct {
	label string
	get   func(*Results) *Figures
}

var (
	pathDirect  = path{"direct", func(r *Results) *Figures { return r.Direct }}
	pathTCP     = path{"oxbroker tcp", func(r *Results) *Figures { return r.Transports["tcp"] }}
	pathQUIC    = path{"oxbroker quic", func(r *Results) *Figures { return r.Transports["quic"] }}
	pathFrpTCP  = path{"frp tcp", func(r *Results) *Figures { return r.Frp["tcp"] }}
	pathFrpQUIC = path{"frp quic", func(r *Results) *Figures { return r.Frp["quic"] }}
	pathFrpHTTP = path{"frp http + injection", func(r *Results) *Figures { return r.Frp["http"] }}

	allPaths = []path{pathDirect, pathTCP, pathQUIC, pathFrpTCP, pathFrpQUIC, pathFrpHTTP}
)

// pathsTable has one row per path measured, like issue 14's table: the
// rates also as ratios to direct, CPU per request of both sides (the
// gateway or frps, and the agent or frpc) and their sum.
func (r *Results) pathsTable() string {
	d := r.Direct
	if d == nil || d.RPS == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| path (same run) | req/s c32 | ×direct | p50 c1, ms | p99 c1, ms | p50 / p99 c32, ms | 100 MiB down, MB/s | ×direct | 20 MiB up, MB/s | CPU µs/req, both sides | server side | client side | peak RSS server / client, MiB |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range allPaths {
		f := p.get(r)
		if f == nil || f.RPS == 0 {
			continue
		}
		label := p.label
		server, client, rss := "—", "—", "—"
		if p.label == pathDirect.label {
			label = "direct (CPU: the stand-in's own)"
		} else {
			server, client = fmt.Sprintf("%.0f", f.GatewayCPUPerRequestUs), fmt.Sprintf("%.0f", f.AgentCPUPerRequestUs)
			rss = fmt.Sprintf("%.1f / %.1f", f.GatewayPeakRSSMiB, f.AgentPeakRSSMiB)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.3f | %.3f | %.3f / %.3f | %.0f | %s | %.0f | %.0f | %s | %s | %s |\n",
			label, f.RPS, times(f.RPS, d.RPS), f.P50C1Ms, f.P99C1Ms, f.P50Ms, f.P99Ms,
			f.DownloadMBps, times(f.DownloadMBps, d.DownloadMBps), f.UploadMBps, f.CPUPerRequestUs, server, client, rss)
	}
	return b.String()
}

// times returns v/base as "0.38×", or "—" without a base.
func times(v, base float64) string {
	if base == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

// scaleTable has the figures of one gateway holding many simulated
// agents, by transport.
func (r *Results) scaleTable() string {
	var ts []string
	for _, t := range []string{"tcp", "quic"} {
		if f := r.Transports[t]; f != nil && f.IdleSessions > 0 {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| one gateway, simulated agents |")
	for _, t := range ts {
		b.WriteString(" " + t + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(ts)) + "\n")
	rows := []struct {
		name string
		cell func(*Figures) string
	}{
		{"agents (the gateway's count of sessions, if other)", func(f *Figures) string {
			if f.GatewaySessionsHeld != 0 && f.GatewaySessionsHeld != f.IdleSessions {
				return fmt.Sprintf("%d (%d)", f.IdleSessions, f.GatewaySessionsHeld)
			}
			return fmt.Sprint(f.IdleSessions)
		}},
		{fmt.Sprintf("all connected, %d dialling at once, s", growRamp), func(f *Figures) string { return fmt.Sprintf("%.1f", f.ConnectSeconds) }},
		{"gateway RSS before → with the agents, MiB", func(f *Figures) string {
			return fmt.Sprintf("%.1f → %.1f", f.GatewayBaseRSSMiB, f.GatewaySessionsRSSMiB)
		}},
		{"memory per idle session, KiB", func(f *Figures) string { return fmt.Sprintf("%.1f", f.IdleSessionKiB) }},
		{"gateway CPU while idle (keepalives), % of one core", func(f *Figures) string {
			if f.IdleCPUWindowSeconds == 0 {
				return "—"
			}
			return fmt.Sprintf("%.1f (over %.0f s)", f.IdleCPUPercent, f.IdleCPUWindowSeconds)
		}},
		{"gateway CPU while idle, µs per session per second", func(f *Figures) string {
			if f.IdleCPUWindowSeconds == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", f.IdleCPUUsPerSessionSecond)
		}},
		{"all welcomed again after the gateway is killed and restarted, s", func(f *Figures) string {
			if f.ReconnectBack < f.ReconnectAgents {
				return fmt.Sprintf("> %.0f (%d of %d back)", f.ReconnectSeconds, f.ReconnectBack, f.ReconnectAgents)
			}
			return fmt.Sprintf("%.2f", f.ReconnectSeconds)
		}},
		{"the new gateway ready after, s", func(f *Figures) string { return fmt.Sprintf("%.2f", f.GatewayRestartSeconds) }},
		{"CPU of the new gateway until all were back, s", func(f *Figures) string { return fmt.Sprintf("%.1f", f.ReconnectGatewayCPUSeconds) }},
		{"failed dials and handshakes meanwhile", func(f *Figures) string { return fmt.Sprint(f.ReconnectFailedAttempts) }},
	}
	for _, row := range rows {
		b.WriteString("| " + row.name + " |")
		for _, t := range ts {
			b.WriteString(" " + row.cell(r.Transports[t]) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// metric is a figure a target is about.
type metric struct {
	name   string
	unit   string // after a value; "" for rates compared as ratios
	format string
	get    func(*Figures) float64
}

var (
	mRPS      = metric{"req/s at c32", "req/s", "%.0f", func(f *Figures) float64 { return f.RPS }}
	mCPU      = metric{"CPU per request, both sides", "µs", "%.0f", func(f *Figures) float64 { return f.CPUPerRequestUs }}
	mP50C1    = metric{"p50 at c1", "ms", "%.3f", func(f *Figures) float64 { return f.P50C1Ms }}
	mDownload = metric{"100 MiB download", "MB/s", "%.0f", func(f *Figures) float64 { return f.DownloadMBps }}
	mIdle     = metric{"memory per idle session", "KiB", "%.1f", func(f *Figures) float64 { return f.IdleSessionKiB }}
	mBack     = metric{"agents back after a gateway restart", "s", "%.2f", func(f *Figures) float64 { return f.ReconnectSeconds }}
	mAgentRSS = metric{"agent peak RSS", "MiB", "%.1f", func(f *Figures) float64 { return f.AgentPeakRSSMiB }}
	mGwRSS    = metric{"gateway peak RSS", "MiB", "%.1f", func(f *Figures) float64 { return f.GatewayPeakRSSMiB }}
)

// goalKind is how a target relates a path's figure to a limit.
type goalKind int

const (
	atLeastTimes goalKind = iota + 1 // of/against ≥ limit
	atMostTimes                      // of/against ≤ limit
	atMostPlus                       // of − against ≤ limit
	atMost                           // of ≤ limit
	timesOnly                        // of/against, no target
	plusOnly                         // of − against, no target
)

// goal is one target: metric m of path of, compared by kind with limit
// (and with the same metric of path against, for relative kinds).
type goal struct {
	issue   int // 0: a comparison without a target
	of      path
	m       metric
	kind    goalKind
	limit   float64
	against path
}

// goals are issue 14's targets (against frp and between our
// transports, and the scale of one gateway), the comparisons with frp
// quic that have no target, and issue 6's targets (against the stand-in
// called directly, and absolute), which stay as they were.
var goals = []goal{
	{14, pathTCP, mRPS, atLeastTimes, 0.80, pathFrpTCP},
	{14, pathTCP, mCPU, atMostTimes, 1.50, pathFrpTCP},
	{14, pathTCP, mP50C1, atMostPlus, 0.10, pathFrpTCP},
	{14, pathTCP, mDownload, atLeastTimes, 0.90, pathFrpTCP},
	{14, pathQUIC, mRPS, atLeastTimes, 0.90, pathTCP},
	{14, pathQUIC, mCPU, atMostTimes, 1.15, pathTCP},
	{14, pathQUIC, mDownload, atLeastTimes, 0.90, pathFrpQUIC},
	{0, pathQUIC, mRPS, timesOnly, 0, pathFrpQUIC},
	{0, pathQUIC, mCPU, timesOnly, 0, pathFrpQUIC},
	{0, pathQUIC, mP50C1, plusOnly, 0, pathFrpQUIC},
	{14, pathTCP, mBack, atMost, 15, path{}},
	{14, pathQUIC, mBack, atMost, 30, path{}},
	{14, pathTCP, mIdle, atMost, 64, path{}},
	{14, pathQUIC, mIdle, atMost, 160, path{}},
	{6, pathTCP, mRPS, atLeastTimes, 0.35, pathDirect},
	{6, pathQUIC, mRPS, atLeastTimes, 0.25, pathDirect},
	{6, pathTCP, mP50C1, atMostPlus, 0.25, pathDirect},
	{6, pathQUIC, mP50C1, atMostPlus, 0.35, pathDirect},
	{6, pathTCP, mDownload, atLeastTimes, 0.30, pathDirect},
	{6, pathQUIC, mDownload, atLeastTimes, 0.12, pathDirect},
	{6, pathTCP, mCPU, atMost, 100, path{}},
	{6, pathQUIC, mCPU, atMost, 150, path{}},
	{6, pathTCP, mAgentRSS, atMost, 40, path{}},
	{6, pathQUIC, mAgentRSS, atMost, 40, path{}},
	{6, pathTCP, mGwRSS, atMost, 60, path{}},
	{6, pathQUIC, mGwRSS, atMost, 60, path{}},
}

// relative reports whether the goal compares two paths.
func (g goal) relative() bool { return g.kind != atMost }

// label is the target in words: "oxbroker tcp: req/s at c32 ≥ 0.80× frp tcp".
func (g goal) label(f *Figures) string {
	name := g.m.name
	if g.m.name == mBack.name && f != nil {
		name = fmt.Sprintf("%d %s", f.ReconnectAgents, name)
	}
	switch g.kind {
	case atLeastTimes:
		return fmt.Sprintf("%s: %s ≥ %.2f× %s", g.of.label, name, g.limit, g.against.label)
	case atMostTimes:
		return fmt.Sprintf("%s: %s ≤ %.2f× %s", g.of.label, name, g.limit, g.against.label)
	case atMostPlus:
		return fmt.Sprintf("%s: %s ≤ %s + %.2f %s", g.of.label, name, g.against.label, g.limit, g.m.unit)
	case atMost:
		return fmt.Sprintf("%s: %s ≤ %g %s", g.of.label, name, g.limit, g.m.unit)
	}
	return fmt.Sprintf("%s: %s against %s", g.of.label, name, g.against.label)
}

// eval returns what the run measured for the goal and whether it meets
// it ("yes", "**no**", or "—" for a comparison without a target); ok is
// false when a figure it needs was not measured.
func (g goal) eval(r *Results) (measured, met string, ok bool) {
	of := g.of.get(r)
	if of == nil || g.m.get(of) == 0 {
		return "", "", false
	}
	v := g.m.get(of)
	var base float64
	if g.relative() {
		a := g.against.get(r)
		if a == nil || g.m.get(a) == 0 {
			return "", "", false
		}
		base = g.m.get(a)
	}
	var pass bool
	f := g.m.format
	switch g.kind {
	case atLeastTimes, atMostTimes, timesOnly:
		x := v / base
		measured = fmt.Sprintf("%.2f× ("+f+" / "+f+" %s)", x, v, base, g.m.unit)
		pass = g.kind == atLeastTimes && x >= g.limit || g.kind == atMostTimes && x <= g.limit
	case atMostPlus, plusOnly:
		x := v - base
		measured = fmt.Sprintf("%+.3f %s ("+f+" − "+f+")", x, g.m.unit, v, base)
		pass = x <= g.limit
	case atMost:
		measured = fmt.Sprintf(f+" %s", v, g.m.unit)
		pass = v <= g.limit
		if g.m.name == mBack.name && of.ReconnectBack < of.ReconnectAgents {
			measured = fmt.Sprintf("> %.0f s (%d of %d back)", v, of.ReconnectBack, of.ReconnectAgents)
			pass = false
		}
	}
	switch {
	case g.issue == 0:
		met = "—"
	case pass:
		met = "yes"
	default:
		met = "**no**"
	}
	return measured, met, true
}

// targetsTable has one row per target whose figures were measured.
func (r *Results) targetsTable() string {
	var b strings.Builder
	for _, g := range goals {
		measured, met, ok := g.eval(r)
		if !ok {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| issue | target (same run) | measured | met? |\n|---:|---|---|---|\n")
		}
		issue := "—"
		if g.issue != 0 {
			issue = fmt.Sprint(g.issue)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", issue, g.label(g.of.get(r)), measured, met)
	}
	return b.String()
}
