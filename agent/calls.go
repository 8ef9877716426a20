package agent

import (
	"slices"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/internal/window"
	"github.com/oxsecurity/oxbroker/proxy"
)

// The recent calls and the traffic of each site, for the status page
// (statusapi.go). The proxies tell them every finished call
// (proxy.CallObserver); memory is bounded: callRing calls, and an hour of
// one-minute buckets per site of the config.
const (
	callRing = 500
	// trafficMinutes is how far back a site's traffic goes.
	trafficMinutes = 60
)

// latencyBounds are the upper bounds, in milliseconds, of the latency
// buckets that p50 and p95 are read from; the last bucket is unbounded.
var latencyBounds = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// CallRecord is one call of /api/calls. It never holds the path or query
// the caller sent, a header or a body (proxy.Call).
type CallRecord struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Site      string    `json:"site"`
	Method    string    `json:"method"`
	Operation string    `json:"operation,omitempty"`
	// Template is the path template the call matched; empty for a path
	// the allowlist does not know.
	Template string `json:"template,omitempty"`
	Status   int    `json:"status"`
	// Code is the broker's error code when the agent answered the call
	// itself (a refusal, Jira unreachable), and Reason why.
	Code       string  `json:"code,omitempty"`
	Reason     string  `json:"reason,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	RequestID  string  `json:"request_id"`
	// Canceled: the caller went away before the answer ended.
	Canceled bool `json:"canceled,omitempty"`
}

// Class is the call's status class: 2xx, 3xx, 4xx, 5xx, or "none" when
// the caller went away before a status was sent.
func (c CallRecord) Class() string { return statusClass(c.Status) }

// Refused reports whether the broker answered the call itself.
func (c CallRecord) Refused() bool { return c.Code != "" }

func statusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	}
	return "none"
}

// ClassCounts counts calls by status class; Refused counts those the
// agent answered itself (they are in 4xx or 5xx too).
type ClassCounts struct {
	S2xx    int `json:"2xx"`
	S3xx    int `json:"3xx"`
	S4xx    int `json:"4xx"`
	S5xx    int `json:"5xx"`
	None    int `json:"none"`
	Refused int `json:"refused"`
}

// Total is the number of calls counted.
func (c ClassCounts) Total() int { return c.S2xx + c.S3xx + c.S4xx + c.S5xx + c.None }

func (c *ClassCounts) add(o ClassCounts) {
	c.S2xx += o.S2xx
	c.S3xx += o.S3xx
	c.S4xx += o.S4xx
	c.S5xx += o.S5xx
	c.None += o.None
	c.Refused += o.Refused
}

// Traffic is a site's calls in the last 5 and 60 minutes, their latency
// over the hour, and the hour minute by minute (oldest first) for a chart.
type Traffic struct {
	Last5m  ClassCounts `json:"last_5m"`
	Last60m ClassCounts `json:"last_60m"`
	// P50MS and P95MS are read from latency buckets (the bucket's range
	// interpolated); 0 without calls.
	P50MS   float64  `json:"p50_ms"`
	P95MS   float64  `json:"p95_ms"`
	Minutes []Minute `json:"minutes"`
	// Peak is the largest count of one minute of Minutes.
	Peak int `json:"peak"`
}

// Minute is one minute of a site's calls: answered (1xx to 3xx) and
// failed (4xx, 5xx, or no answer).
type Minute struct {
	OK    int `json:"ok"`
	Error int `json:"error"`
}

// callLog keeps the last callRing calls and each site's last hour.
type callLog struct {
	now func() time.Time

	mu    sync.Mutex // guards the fields below
	seq   uint64
	ring  []CallRecord // the last callRing calls; next is where the next goes
	next  int
	sites map[string]*window.Minutes[minuteBucket] // each site's last hour
}

func newCallLog() *callLog {
	return &callLog{now: time.Now, ring: make([]CallRecord, 0, callRing), sites: make(map[string]*window.Minutes[minuteBucket])}
}

// minuteBucket is one minute of a site's calls.
type minuteBucket struct {
	counts  ClassCounts
	latency [16]int // calls by latencyBounds bucket (the last: above them all)
}

var _ proxy.CallObserver = (*metrics)(nil)

// ObserveCall records one finished call for the status page.
func (m *metrics) ObserveCall(c proxy.Call) { m.calls.add(c) }

func (l *callLog) add(c proxy.Call) {
	rec := CallRecord{
		Time: c.Start.UTC(), Site: c.Site, Method: c.Method, Operation: c.Operation, Template: c.Template,
		Status: c.Status, Code: string(c.Code), Reason: c.Reason,
		DurationMS: float64(c.Duration.Microseconds()) / 1000, BytesIn: c.BytesIn, BytesOut: c.BytesOut,
		RequestID: c.RequestID, Canceled: c.Canceled,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	rec.Seq = l.seq
	if len(l.ring) < callRing {
		l.ring = append(l.ring, rec)
	} else {
		l.ring[l.next] = rec
	}
	l.next = (l.next + 1) % callRing

	st := l.sites[c.Site]
	if st == nil {
		st = window.New[minuteBucket](trafficMinutes)
		l.sites[c.Site] = st
	}
	b := st.At(l.now())
	switch rec.Class() {
	case "2xx":
		b.counts.S2xx++
	case "3xx":
		b.counts.S3xx++
	case "4xx":
		b.counts.S4xx++
	case "5xx":
		b.counts.S5xx++
	default:
		b.counts.None++
	}
	if rec.Refused() {
		b.counts.Refused++
	}
	ms := float64(c.Duration) / float64(time.Millisecond)
	i, _ := slices.BinarySearch(latencyBounds, ms)
	b.latency[i]++
}

// CallFilter selects calls: by site, and by status class (2xx, 3xx, 4xx,
// 5xx, none) or "refused"; empty fields select all.
type CallFilter struct {
	Site   string
	Status string
}

func (f CallFilter) match(c CallRecord) bool {
	switch {
	case f.Site != "" && c.Site != f.Site:
		return false
	case f.Status == "refused":
		return c.Refused()
	case f.Status != "" && c.Class() != f.Status:
		return false
	}
	return true
}

// recent returns the calls f selects, newest first.
func (l *callLog) recent(f CallFilter) []CallRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ring) // the newest is just before next, also while the ring fills
	out := make([]CallRecord, 0, n)
	for i := range n {
		if c := l.ring[(l.next-1-i+2*n)%n]; f.match(c) {
			out = append(out, c)
		}
	}
	return out
}

// traffic returns site's traffic of the last hour.
func (l *callLog) traffic(site string) Traffic {
	t := Traffic{Minutes: make([]Minute, trafficMinutes)}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.sites[site]
	if st == nil {
		return t
	}
	var latency [16]int
	st.Each(l.now(), func(age int, b *minuteBucket) {
		if age < 5 {
			t.Last5m.add(b.counts)
		}
		t.Last60m.add(b.counts)
		for i, n := range b.latency {
			latency[i] += n
		}
		m := Minute{OK: b.counts.S2xx + b.counts.S3xx}
		m.Error = b.counts.Total() - m.OK
		t.Minutes[trafficMinutes-1-age] = m
		t.Peak = max(t.Peak, m.OK+m.Error)
	})
	t.P50MS, t.P95MS = quantile(latency[:], 0.5), quantile(latency[:], 0.95)
	return t
}

// quantile estimates the q-quantile of the latencies counted in buckets,
// interpolating within the bucket it falls in; 0 without any.
func quantile(buckets []int, q float64) float64 {
	total := 0
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	seen := 0
	for i, n := range buckets {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i == len(latencyBounds) { // above every bound
			return latencyBounds[i-1]
		}
		lo := 0.0
		if i > 0 {
			lo = latencyBounds[i-1]
		}
		return lo + (latencyBounds[i]-lo)*(rank-float64(seen))/float64(n)
	}
	return latencyBounds[len(latencyBounds)-1]
}
