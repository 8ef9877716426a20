package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/proxy"
)

// TestCallLog: the log keeps the last callRing calls, newest first,
// filters them by site and status, and counts each site's last hour by
// the minute.
func TestCallLog(t *testing.T) {
	l := newCallLog()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	add := func(site string, status int, code brokerhttp.Code, d time.Duration) {
		l.add(proxy.Call{Start: now, Site: site, Method: "GET", Status: status, Code: code, Duration: d, RequestID: fmt.Sprint(l.seq + 1)})
	}
	for i := range callRing + 10 {
		add("a", 200, "", time.Duration(i%10+1)*time.Millisecond)
	}
	got := l.recent(CallFilter{})
	if len(got) != callRing || got[0].Seq != callRing+10 || got[len(got)-1].Seq != 11 {
		t.Fatalf("after %d calls: %d kept, newest %d, oldest %d; want %d, %d, 11",
			callRing+10, len(got), got[0].Seq, got[len(got)-1].Seq, callRing, callRing+10)
	}
	add("b", 403, brokerhttp.PathNotAllowed, time.Millisecond)
	add("b", 502, brokerhttp.UpstreamUnreachable, time.Millisecond)
	add("b", 500, "", time.Millisecond) // Jira's own
	add("b", 0, "", time.Millisecond)   // the caller went away
	for _, tt := range []struct {
		f    CallFilter
		want int
	}{
		{CallFilter{Site: "b"}, 4},
		{CallFilter{Site: "b", Status: "refused"}, 2},
		{CallFilter{Status: "5xx"}, 2},
		{CallFilter{Status: "4xx"}, 1},
		{CallFilter{Site: "a", Status: "4xx"}, 0},
		{CallFilter{Site: "nosuch"}, 0},
	} {
		if got := len(l.recent(tt.f)); got != tt.want {
			t.Errorf("filter %+v: got %d calls, want %d", tt.f, got, tt.want)
		}
	}

	// Six minutes later: the last 5 minutes are empty, the hour is not.
	now = now.Add(6 * time.Minute)
	add("b", 200, "", 40*time.Millisecond)
	tr := l.traffic("b")
	if tr.Last5m.Total() != 1 || tr.Last5m.S2xx != 1 {
		t.Errorf("last 5 min: got %+v, want one 2xx", tr.Last5m)
	}
	if c := tr.Last60m; c.Total() != 5 || c.S2xx != 1 || c.S4xx != 1 || c.S5xx != 2 || c.None != 1 || c.Refused != 2 {
		t.Errorf("last 60 min: got %+v", c)
	}
	if m := tr.Minutes[trafficMinutes-1]; m.OK != 1 || m.Error != 0 {
		t.Errorf("this minute: got %+v, want 1 ok", m)
	}
	if m := tr.Minutes[trafficMinutes-7]; m.OK != 0 || m.Error != 4 {
		t.Errorf("six minutes ago: got %+v, want 4 errors", m)
	}
	if tr.Peak != 4 {
		t.Errorf("peak %d, want 4", tr.Peak)
	}
	// An hour later nothing is left of it.
	now = now.Add(time.Hour)
	if tr := l.traffic("b"); tr.Last60m.Total() != 0 || tr.Peak != 0 || tr.P50MS != 0 {
		t.Errorf("an hour later: got %+v", tr)
	}
}

// TestQuantile: p50 and p95 are read from the latency buckets, within the
// bucket that holds them.
func TestQuantile(t *testing.T) {
	buckets := make([]int, len(latencyBounds)+1)
	buckets[4] = 90 // (10, 25] ms
	buckets[9] = 10 // (500, 1000] ms
	if p := quantile(buckets, 0.5); p <= 10 || p > 25 {
		t.Errorf("p50 %v, want within (10, 25]", p)
	}
	if p := quantile(buckets, 0.95); p <= 500 || p > 1000 {
		t.Errorf("p95 %v, want within (500, 1000]", p)
	}
	buckets = make([]int, len(latencyBounds)+1)
	buckets[len(latencyBounds)] = 1 // over every bound
	if p := quantile(buckets, 0.5); p != latencyBounds[len(latencyBounds)-1] {
		t.Errorf("p50 above the bounds: %v", p)
	}
	if p := quantile(make([]int, 3), 0.5); p != 0 {
		t.Errorf("no calls: %v", p)
	}
}
