package ui

import (
	"fmt"
	"html/template"
	"time"
)

// funcs are the templates' helpers: wording of times, sizes and counts,
// and the geometry of the traffic chart.
var funcs = template.FuncMap{
	"ago":     ago,
	"until":   until,
	"uptime":  uptime,
	"ms":      ms,
	"size":    size,
	"clock":   func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stamp":   func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"mark":    mark,
	"pct":     pct,
	"barX":    func(i int) int { return i * barStep },
	"barH":    barHeight,
	"chartW":  func(n int) int { return n * barStep },
	"chartH":  func() int { return chartHeight },
	"sub":     func(a, b int) int { return a - b },
	"add":     func(a, b int) int { return a + b },
	"classOf": classOf,
}

const (
	barStep     = 5  // px per minute in the traffic chart
	chartHeight = 40 // px
)

// barHeight is the height of a bar of n calls in a chart whose tallest
// bar has peak calls; at least 1 px for a minute that had calls.
func barHeight(n, peak int) int {
	if n <= 0 || peak <= 0 {
		return 0
	}
	return max(1, n*chartHeight/peak)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return human(time.Since(t)) + " ago"
}

func until(t *time.Time) string {
	if t == nil {
		return ""
	}
	if d := time.Until(*t); d > 0 {
		return "in " + human(d)
	}
	return "now"
}

func uptime(seconds int64) string { return human(time.Duration(seconds) * time.Second) }

// human words a duration the way a person reads it: 4s, 12m 3s, 5h 2m, 3d 4h.
func human(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	case v < 10000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f s", v/1000)
}

func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// mark is the sign of a check's status, as `oxbroker check` prints it.
func mark(status string) string {
	switch status {
	case "pass":
		return "✓"
	case "fail":
		return "✗"
	case "warn":
		return "!"
	}
	return "–"
}

func pct(part, whole int) string {
	if whole == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
}

// classOf is the CSS class of a status word: good, warn or bad.
func classOf(word string) string {
	switch word {
	case "pass", "up", "ok", "online", "2xx", "3xx", "ready":
		return "good"
	case "warn", "soon", "connecting", "4xx", "none":
		return "warn"
	case "fail", "down", "waiting", "offline", "5xx", "urgent", "expired", "not ready":
		return "bad"
	}
	return ""
}
