package gateway

import (
	"slices"
	"sync"
	"testing"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// fakeSession is a registry entry without a tunnel behind it: the
// registry looks only at ids, brokers, sites and in-flight counts.
func fakeSession(id, broker string, sites ...string) *agentSession {
	h := tunnel.Hello{BrokerID: broker}
	for _, s := range sites {
		h.Sites = append(h.Sites, tunnel.SiteInfo{Name: s, Type: "jira"})
	}
	return newAgentSession(id, broker, h, nil)
}

func ids(list []*agentSession) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.id)
	}
	slices.Sort(out)
	return out
}

func TestRegistryAddRemove(t *testing.T) {
	a1 := fakeSession("a1", "acme", "jira")
	a2 := fakeSession("a2", "acme", "jira")
	o1 := fakeSession("o1", "other", "jira")
	r := registryOf(a1, a2, o1)

	if got, want := ids(r.sessions("acme")), []string{"a1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("sessions(acme): got %v, want %v", got, want)
	}
	if got, want := ids(r.sessions("other")), []string{"o1"}; !slices.Equal(got, want) {
		t.Errorf("sessions(other): got %v, want %v", got, want)
	}
	if got := r.sessions("nobody"); len(got) != 0 {
		t.Errorf("sessions(nobody): got %v, want none", ids(got))
	}
	if got, want := ids(r.all()), []string{"a1", "a2", "o1"}; !slices.Equal(got, want) {
		t.Errorf("all: got %v, want %v", got, want)
	}

	// sessions returns a snapshot: changing it changes nothing inside.
	snap := r.sessions("acme")
	snap[0] = o1
	if got, want := ids(r.sessions("acme")), []string{"a1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("sessions(acme) after the caller changed a snapshot: got %v, want %v", got, want)
	}

	r.remove(a1)
	if got, want := ids(r.sessions("acme")), []string{"a2"}; !slices.Equal(got, want) {
		t.Errorf("sessions(acme) after remove(a1): got %v, want %v", got, want)
	}
	// Removing twice, or removing a session with the same id that was
	// never added, changes nothing.
	r.remove(a1)
	r.remove(fakeSession("a1", "acme", "jira"))
	if got, want := ids(r.sessions("acme")), []string{"a2"}; !slices.Equal(got, want) {
		t.Errorf("sessions(acme) after removing absent sessions: got %v, want %v", got, want)
	}
	r.remove(a2)
	if _, ok := r.byBroker["acme"]; ok {
		t.Error("a broker without sessions keeps an entry in the registry; want it deleted")
	}
	if _, found := pickOne(r, "acme", "jira"); found {
		t.Error("pick(acme) after its last session left: found true, want false")
	}
	if got, want := ids(r.all()), []string{"o1"}; !slices.Equal(got, want) {
		t.Errorf("all: got %v, want %v", got, want)
	}
}

func TestRegistryPick(t *testing.T) {
	r := newRegistry()
	if s, found := pickOne(r, "acme", "jira"); s != nil || found {
		t.Fatalf("pick with no session: got %v, %v, want nil, false", s, found)
	}

	jira := fakeSession("jira", "acme", "jira")
	wiki := fakeSession("wiki", "acme", "wiki")
	r.add(jira)
	r.add(wiki)
	r.add(fakeSession("other", "other", "jira", "wiki"))

	if s, found := pickOne(r, "acme", "nosuch"); s != nil || !found {
		t.Fatalf("pick of an unknown site: got %v, %v, want nil, true", s, found)
	}
	if s, found := pickOne(r, "nobody", "jira"); s != nil || found {
		t.Fatalf("pick of an unknown broker: got %v, %v, want nil, false", s, found)
	}
	for range 10 { // whatever the rotation
		if s, _ := pickOne(r, "acme", "jira"); s != jira {
			t.Fatalf("pick(acme, jira): got %v, want the session serving jira", s.id)
		}
		if s, _ := pickOne(r, "acme", "wiki"); s != wiki {
			t.Fatalf("pick(acme, wiki): got %v, want the session serving wiki", s.id)
		}
	}

	// Sites follow setSites.
	wiki.setSites([]tunnel.SiteInfo{{Name: "wiki"}, {Name: "jira"}})
	jira.setSites(nil)
	for range 10 {
		if s, _ := pickOne(r, "acme", "jira"); s != wiki {
			t.Fatalf("pick(acme, jira) after the sites moved: got %v, want wiki", s.id)
		}
	}
	wiki.setSites(nil)
	if s, found := pickOne(r, "acme", "jira"); s != nil || !found {
		t.Fatalf("pick after every site was withdrawn: got %v, %v, want nil, true", s, found)
	}
}

func TestRegistryPickFewestInFlight(t *testing.T) {
	busy := fakeSession("busy", "acme", "jira")
	idle := fakeSession("idle", "acme", "jira")
	busier := fakeSession("busier", "acme", "jira")
	r := registryOf(busy, idle, busier)
	busy.inflight.Store(3)
	idle.inflight.Store(1)
	busier.inflight.Store(7)
	for range 10 {
		if s, _ := pickOne(r, "acme", "jira"); s != idle {
			t.Fatalf("pick: got %s, want idle (fewest requests in flight)", s.id)
		}
	}
	idle.inflight.Store(5)
	for range 10 {
		if s, _ := pickOne(r, "acme", "jira"); s != busy {
			t.Fatalf("pick after idle got busier: got %s, want busy", s.id)
		}
	}
	// The session with fewest in flight wins only among those serving the site.
	busy.setSites([]tunnel.SiteInfo{{Name: "wiki"}})
	for range 10 {
		if s, _ := pickOne(r, "acme", "jira"); s != idle {
			t.Fatalf("pick when the least busy has no such site: got %s, want idle", s.id)
		}
	}
}

func TestRegistryPickRotatesTies(t *testing.T) {
	tests := []struct {
		name     string
		sessions []*agentSession
		serving  []string // ids of the sessions serving "jira"
	}{
		{"two equal", []*agentSession{fakeSession("a", "acme", "jira"), fakeSession("b", "acme", "jira")}, []string{"a", "b"}},
		{"three equal", []*agentSession{fakeSession("a", "acme", "jira"), fakeSession("b", "acme", "jira"), fakeSession("c", "acme", "jira")}, []string{"a", "b", "c"}},
		{"two of three serve the site", []*agentSession{fakeSession("a", "acme", "jira"), fakeSession("b", "acme", "wiki"), fakeSession("c", "acme", "jira")}, []string{"a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registryOf(tt.sessions...)
			const picks = 300
			count := map[string]int{}
			for range picks {
				s, _ := pickOne(r, "acme", "jira")
				count[s.id]++
			}
			for _, id := range tt.serving {
				// Each of n sessions should get about picks/n; a fifth of
				// that shows the rotation without asking for fairness.
				if min := picks / len(tt.serving) / 5; count[id] < min {
					t.Errorf("session %s: got %d of %d picks, want at least %d (counts %v)", id, count[id], picks, min, count)
				}
			}
			if got := len(count); got != len(tt.serving) {
				t.Errorf("sessions picked: got %v, want only %v", count, tt.serving)
			}
		})
	}
}

// TestRegistryConcurrent is for the race detector.
func TestRegistryConcurrent(t *testing.T) {
	r := newRegistry()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := fakeSession("s", "acme", "jira")
				r.add(s)
				if p, _ := pickOne(r, "acme", "jira"); p != nil {
					p.inflight.Add(1)
					p.hasSite("jira")
					p.inflight.Add(-1)
				}
				if i%2 == w%2 {
					s.setSites([]tunnel.SiteInfo{{Name: "wiki"}})
				}
				r.sessions("acme")
				r.all()
				r.remove(s)
			}
		})
	}
	wg.Wait()
	if got := r.all(); len(got) != 0 {
		t.Fatalf("sessions left after every one was removed: got %d, want 0", len(got))
	}
}

// pickOne picks a session and gives its in-flight slot back at once, for
// tests of which session is chosen.
func pickOne(r *registry, broker, site string) (*agentSession, bool) {
	s, found := r.pick(broker, site)
	if s != nil {
		s.inflight.Add(-1)
	}
	return s, found
}

// TestRegistryPickCountsInFlight: pick raises the chosen session's
// in-flight count under the registry lock, so a session removed from the
// registry and waiting to be idle cannot lose a request picked just before.
func TestRegistryPickCountsInFlight(t *testing.T) {
	a := fakeSession("a", "acme", "jira")
	r := registryOf(a)
	s, _ := r.pick("acme", "jira")
	if s != a || a.inflight.Load() != 1 {
		t.Fatalf("after pick: got session %v with %d in flight, want a with 1", s, a.inflight.Load())
	}
	s, _ = r.pick("acme", "jira")
	if s != a || a.inflight.Load() != 2 {
		t.Fatalf("after two picks: got session %v with %d in flight, want a with 2", s, a.inflight.Load())
	}
}

// registryOf is a registry holding sessions, added in order.
func registryOf(sessions ...*agentSession) *registry {
	r := newRegistry()
	for _, s := range sessions {
		r.add(s)
	}
	return r
}
