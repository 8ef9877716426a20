package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// fakeLookup resolves the names of a map; any other name does not exist.
func fakeLookup(names map[string][]string) func(context.Context, string, string) ([]netip.Addr, error) {
	return func(_ context.Context, network, host string) ([]netip.Addr, error) {
		if network != "ip" {
			return nil, fmt.Errorf("lookup %s: network %q, want ip", host, network)
		}
		ips, ok := names[host]
		if !ok {
			return nil, fmt.Errorf("lookup %s: no such host", host)
		}
		var out []netip.Addr
		for _, s := range ips {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func TestResolve(t *testing.T) {
	lookup := fakeLookup(map[string][]string{
		"gw.test":     {"127.0.0.2", "127.0.0.3"},
		"dual.test":   {"10.0.0.1", "2001:db8::1", "10.0.0.2"},
		"six.test":    {"2001:db8::1", "10.0.0.1", "2001:db8::2"},
		"mapped.test": {"::ffff:10.0.0.9"},
		"empty.test":  {},
	})
	tests := []struct {
		name     string
		names    []string
		viaProxy bool
		want     []string // endpoint addr/host
		wantErr  string   // in the error; "" for none
	}{
		{"an IP address is itself", []string{"127.0.0.1:443"}, false, []string{"127.0.0.1:443/127.0.0.1"}, ""},
		{"a name gives every address, host name kept for TLS", []string{"gw.test:443"}, false,
			[]string{"127.0.0.2:443/gw.test", "127.0.0.3:443/gw.test"}, ""},
		{"the family the resolver lists first: IPv4", []string{"dual.test:443"}, false,
			[]string{"10.0.0.1:443/dual.test", "[2001:db8::1]:443/dual.test secondary", "10.0.0.2:443/dual.test"}, ""},
		{"the family the resolver lists first: IPv6", []string{"six.test:443"}, false,
			[]string{"[2001:db8::1]:443/six.test", "10.0.0.1:443/six.test secondary", "[2001:db8::2]:443/six.test"}, ""},
		{"an IPv4-mapped address is IPv4", []string{"mapped.test:443"}, false, []string{"10.0.0.9:443/mapped.test"}, ""},
		{"several names, one address twice", []string{"gw.test:443", "127.0.0.3:443", "127.0.0.4:443"}, false,
			[]string{"127.0.0.2:443/gw.test", "127.0.0.3:443/gw.test", "127.0.0.4:443/127.0.0.4"}, ""},
		{"a name that does not resolve is left out", []string{"nx.test:443", "gw.test:8443"}, false,
			[]string{"127.0.0.2:8443/gw.test", "127.0.0.3:8443/gw.test"}, "nx.test"},
		{"no name resolves", []string{"nx.test:443", "empty.test:443"}, false, nil, "empty.test:443: no address"},
		{"through a proxy names are not resolved", []string{"gw.test:443", "nx.test:443"}, true,
			[]string{"gw.test:443/gw.test", "nx.test:443/nx.test"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lookup
			if tt.viaProxy {
				l = func(context.Context, string, string) ([]netip.Addr, error) {
					t.Error("lookup called with a proxy: the proxy resolves names")
					return nil, errors.New("no lookup through a proxy")
				}
			}
			eps, err := resolve(context.Background(), l, tt.names, tt.viaProxy)
			var got []string
			for _, ep := range eps {
				e := ep.addr + "/" + ep.host
				if ep.secondary {
					e += " secondary"
				}
				got = append(got, e)
				if !slices.Contains(tt.names, ep.name) {
					t.Errorf("endpoint %s: name %q is not a configured address", ep.addr, ep.name)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("endpoints of %v: got %v, want %v", tt.names, got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error: got %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error: got %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

func newTestSpread() *spread {
	return newSpread(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g"}, []string{"gateway"}))
}

func eps(specs ...string) []endpoint {
	var out []endpoint
	for _, s := range specs { // name=addr, or name=addr/2 for a secondary address
		name, addr, _ := strings.Cut(s, "=")
		addr, sec := strings.CutSuffix(addr, "/2")
		out = append(out, endpoint{addr: addr, name: name, secondary: sec})
	}
	return out
}

func TestPick(t *testing.T) {
	two := eps("gw=a", "gw=b")
	tests := []struct {
		name  string
		eps   []endpoint
		held  []string // endpoints other connections use (picked and not released)
		last  string
		tried []string
		want  []string // any of these
	}{
		{"the endpoint nobody uses", two, []string{"a"}, "", nil, []string{"b"}},
		{"configured addresses before resolved ones", eps("one=a1", "one=a2", "two=b"), []string{"a1"}, "", nil, []string{"b"}},
		{"then the endpoints of the least used address", eps("one=a1", "one=a2", "two=b"), []string{"a1", "b"}, "", nil, []string{"a2"}},
		{"not the one just left, however busy the other", two, []string{"b", "b"}, "a", []string{"a"}, []string{"b"}},
		{"not one tried since the last session", eps("gw=a", "gw=b", "gw=c"), []string{"c"}, "a", []string{"a", "b"}, []string{"c"}},
		{"all tried: not the last one", two, nil, "b", []string{"a", "b"}, []string{"a"}},
		{"only one endpoint: that one", eps("gw=a"), []string{"a"}, "a", []string{"a"}, []string{"a"}},
		{"ties: any", eps("gw=a", "gw=b", "gw=c"), []string{"a"}, "", nil, []string{"b", "c"}},
		{"the first family, however busy", eps("gw=a", "gw=b6/2"), []string{"a", "a"}, "", nil, []string{"a"}},
		{"the other family once the first was tried", eps("gw=a", "gw=b6/2"), nil, "a", []string{"a"}, []string{"b6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSpread()
			for _, h := range tt.held {
				for _, ep := range tt.eps {
					if ep.addr == h {
						s.byAddr[ep.addr]++
						s.byName[ep.name]++
					}
				}
			}
			tried := map[string]bool{}
			for _, a := range tt.tried {
				tried[a] = true
			}
			for range 20 { // ties are broken at random
				ep := s.pick(tt.eps, tt.last, tried)
				if !slices.Contains(tt.want, ep.addr) {
					t.Fatalf("pick with %v held, last %q, tried %v: got %s, want one of %v", tt.held, tt.last, tt.tried, ep.addr, tt.want)
				}
				s.release(ep)
			}
		})
	}
}

// TestPickSpreadsThenReleases: n connections picking in turn take n
// distinct endpoints; released ones are free again.
func TestPickSpreadsThenReleases(t *testing.T) {
	s := newTestSpread()
	all := eps("gw=a", "gw=b", "gw=c")
	var got []endpoint
	for range 3 {
		got = append(got, s.pick(all, "", nil))
	}
	if distinct := map[string]bool{got[0].addr: true, got[1].addr: true, got[2].addr: true}; len(distinct) != 3 {
		t.Fatalf("three picks: got %s %s %s, want three distinct endpoints", got[0].addr, got[1].addr, got[2].addr)
	}
	s.release(got[1])
	if ep := s.pick(all, "", nil); ep.addr != got[1].addr {
		t.Errorf("pick after %s was released: got %s, want %s", got[1].addr, ep.addr, got[1].addr)
	}
	for _, ep := range got {
		s.release(ep)
	}
	s.release(got[1])
	if len(s.byAddr) != 0 || len(s.byName) != 0 {
		t.Errorf("after every release: counts %v %v, want none", s.byAddr, s.byName)
	}
	// A fleet of agents spreads: a fresh agent's first pick is any endpoint.
	seen := map[string]bool{}
	for range 200 {
		seen[newTestSpread().pick(all, "", nil).addr] = true
	}
	if len(seen) != 3 {
		t.Errorf("first picks of 200 agents: got %v, want all three endpoints", seen)
	}
}

func shutdownReject() error {
	return &tunnel.RejectError{Reject: tunnel.Reject{Code: tunnel.RejectShutdown, Message: "gateway is shutting down"}}
}

// TestRetryAfterShuttingDown: after a reject shutting_down, failed
// attempts (more shutting_down, or refused dials while the gateway's
// process restarts) are retried on the quick schedule (100 ms, 200 ms,
// 400 ms, 800 ms, then 1 s, each jittered down to half), quickRetries
// times, without growing the backoff; then the backoff applies, so a
// gateway that keeps refusing is not dialled in a loop. A welcome makes
// the quick retries available again.
func TestRetryAfterShuttingDown(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 200 * time.Millisecond, 3: 800 * time.Millisecond,
		4: time.Second, quickRetries: time.Second, 63: time.Second} {
		if got := quickWait(n); got != want {
			t.Errorf("quickWait(%d): got %s, want %s", n, got, want)
		}
	}
	r := newRetry()
	for i := range quickRetries {
		err := shutdownReject()
		if i%2 == 1 {
			err = errors.New("tcp dial: connection refused")
		}
		d := r.after(false, time.Millisecond, err)
		if w := quickWait(i); d < w/2 || d > w {
			t.Fatalf("delay after failure #%d (%v) since shutting_down: got %s, want within [%s, %s]", i+1, err, d, w/2, w)
		}
		if r.bo.Attempt() != 0 {
			t.Fatalf("backoff after failure #%d since shutting_down: got attempt %d, want 0 (not grown)", i+1, r.bo.Attempt())
		}
	}
	r.after(false, time.Millisecond, shutdownReject())
	if r.bo.Attempt() != 1 {
		t.Fatalf("after %d shutting_down in a row: backoff attempt %d, want 1 (the backoff applies)", quickRetries+1, r.bo.Attempt())
	}
	r.after(false, time.Millisecond, shutdownReject())
	if r.bo.Attempt() != 2 {
		t.Fatalf("after %d shutting_down in a row: backoff attempt %d, want 2 (it grows)", quickRetries+2, r.bo.Attempt())
	}
	// A session (however short) ends the restart: a failure after it
	// takes the backoff, and a shutting_down is quick again.
	r.after(true, time.Second, errors.New("session closed"))
	if r.bo.Attempt() != 3 {
		t.Fatalf("a failure after a session: backoff attempt %d, want 3", r.bo.Attempt())
	}
	if d := r.after(false, time.Millisecond, shutdownReject()); d > quickRetry {
		t.Fatalf("shutting_down after a session: got %s, want at most %s", d, quickRetry)
	}
}

func TestRetryAfter(t *testing.T) {
	goaway := fmt.Errorf("x: %w", errGoAway)
	unauthorized := &tunnel.RejectError{Reject: tunnel.Reject{Code: tunnel.RejectUnauthorized}}
	t.Run("goaway: at once, backoff reset", func(t *testing.T) {
		r := newRetry()
		for range 5 {
			r.after(false, 0, errors.New("refused"))
		}
		if d := r.after(true, time.Second, goaway); d != 0 {
			t.Errorf("delay after goaway: got %s, want 0", d)
		}
		if r.bo.Attempt() != 0 {
			t.Errorf("backoff after goaway: got attempt %d, want 0", r.bo.Attempt())
		}
		// The gateway restarts in place: its address refuses for a moment.
		if d := r.after(false, time.Millisecond, errors.New("connection refused")); d > quickRetry {
			t.Errorf("delay after a refused dial that follows a goaway: got %s, want at most %s", d, quickRetry)
		}
	})
	t.Run("failures grow the backoff", func(t *testing.T) {
		r := newRetry()
		for i := range 5 {
			r.after(false, 0, errors.New("refused"))
			if r.bo.Attempt() != i+1 {
				t.Fatalf("after %d failures: attempt %d, want %d", i+1, r.bo.Attempt(), i+1)
			}
		}
		r.after(true, time.Second, errors.New("tunnel down"))
		if r.bo.Attempt() != 6 {
			t.Errorf("after a short session: attempt %d, want 6 (a session shorter than %s does not reset)", r.bo.Attempt(), tunnel.StableAfter)
		}
		r.after(true, tunnel.StableAfter+time.Second, errors.New("tunnel down"))
		if r.bo.Attempt() != 1 {
			t.Errorf("after a stable session: attempt %d, want 1 (reset, then one step)", r.bo.Attempt())
		}
	})
	t.Run("unauthorized: near the cap", func(t *testing.T) {
		r := newRetry()
		if d := r.after(false, 0, unauthorized); d < tunnel.BackoffMax/2 {
			t.Errorf("delay after unauthorized: got %s, want at least %s", d, tunnel.BackoffMax/2)
		}
	})
}
