package gateway

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
)

// agentSession is one live, authenticated tunnel session of a broker.
type agentSession struct {
	id       string
	brokerID string
	hello    tunnel.Hello
	sess     tunnel.Session
	loop     *tunnel.ControlLoop // the control stream; set before the session is registered
	since    time.Time
	// transport sends HTTP over streams of sess; idle streams are kept for
	// reuse like idle TCP connections.
	transport *streamhttp.Client
	inflight  inflightCount

	mu    sync.Mutex // guards sites
	sites []tunnel.SiteInfo
}

func newAgentSession(id, brokerID string, h tunnel.Hello, s tunnel.Session) *agentSession {
	as := &agentSession{id: id, brokerID: brokerID, hello: h, sess: s, since: time.Now(), sites: h.Sites}
	as.transport = streamhttp.NewClient(s)
	return as
}

// inflightCount counts the requests routed to a session that have not
// finished, and says when none is left: a draining session waits on Idle
// instead of polling.
type inflightCount struct {
	n    atomic.Int64  // read without the lock by pick
	mu   sync.Mutex    // serialises changes of n, and guards zero
	zero chan struct{} // closed while n is 0; nil until first needed
}

// Add changes the count by d.
func (c *inflightCount) Add(d int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.n.Load()
	now := c.n.Add(d)
	switch {
	case now == 0 && c.zero != nil:
		close(c.zero)
	case was == 0 && now != 0 && c.zero != nil:
		c.zero = make(chan struct{})
	}
}

// Store sets the count (tests).
func (c *inflightCount) Store(n int64) { c.Add(n - c.Load()) }

// Load returns the count.
func (c *inflightCount) Load() int64 { return c.n.Load() }

// Idle returns a channel that is closed while no request is in flight.
func (c *inflightCount) Idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.zero == nil {
		c.zero = make(chan struct{})
		if c.n.Load() == 0 {
			close(c.zero)
		}
	}
	return c.zero
}

// ack tells the agent, after a goaway from either side, that nothing more
// will be routed to this session: the gateway half-closes the control
// stream (tunnel/spec.md). The agent keeps taking streams until then.
func (s *agentSession) ack() {
	s.loop.CloseWrite()
}

func (s *agentSession) setSites(sites []tunnel.SiteInfo) {
	s.mu.Lock()
	s.sites = sites
	s.mu.Unlock()
}

func (s *agentSession) hasSite(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.sites, func(si tunnel.SiteInfo) bool { return si.Name == name })
}

func (s *agentSession) siteList() []tunnel.SiteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sites)
}

// registry holds the live sessions of every broker on this gateway
// process. What replicas share (registry.type) is a sharedRegistry.
type registry struct {
	mu       sync.Mutex // guards byBroker and changed
	byBroker map[string][]*agentSession
	// changed is closed, and replaced, when a session is added or its
	// sites change: requests waiting for a session wake up on it.
	changed chan struct{}
	next    atomic.Uint64 // rotates the starting point of pick
}

func newRegistry() *registry {
	return &registry{byBroker: make(map[string][]*agentSession), changed: make(chan struct{})}
}

func (r *registry) add(s *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byBroker[s.brokerID] = append(r.byBroker[s.brokerID], s)
	r.notifyLocked()
}

// changes returns a channel that is closed at the next add or notify.
// Take it before looking, so that a change in between is not missed.
func (r *registry) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// notify wakes the requests waiting for a session (a session's sites
// changed).
func (r *registry) notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notifyLocked()
}

func (r *registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *registry) remove(s *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := slices.DeleteFunc(r.byBroker[s.brokerID], func(x *agentSession) bool { return x == s })
	if len(list) == 0 {
		delete(r.byBroker, s.brokerID)
	} else {
		r.byBroker[s.brokerID] = list
	}
}

// sessions returns a snapshot of a broker's sessions.
func (r *registry) sessions(brokerID string) []*agentSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.byBroker[brokerID])
}

// all returns a snapshot of every session.
func (r *registry) all() []*agentSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*agentSession
	for _, l := range r.byBroker {
		out = append(out, l...)
	}
	return out
}

// pick chooses the session of brokerID serving site with the fewest
// requests in flight, so that load spreads across an agent's HA
// connections and away from a slow one; ties rotate. The chosen session's
// in-flight count is already raised: the caller lowers it when done. found reports whether the broker
// has any session at all.
func (r *registry) pick(brokerID, site string) (s *agentSession, found bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.byBroker[brokerID]
	start := int(r.next.Add(1) % uint64(max(len(list), 1)))
	for i := range list {
		c := list[(start+i)%len(list)]
		if !c.hasSite(site) {
			continue
		}
		if s == nil || c.inflight.Load() < s.inflight.Load() {
			s = c
		}
	}
	if s != nil {
		// Counted under the lock, so that a session removed from the
		// registry cannot be picked and then closed as idle before its
		// request is counted.
		s.inflight.Add(1)
	}
	return s, len(list) > 0
}

// sharedRegistry is what the replicas of a gateway share (registry.type):
// where each broker's sessions are, and brokers defined outside the
// config file. memoryRegistry shares nothing (one gateway process);
// redisRegistry keeps both in Redis (redis.go).
type sharedRegistry interface {
	// publish records a local session, or its new sites, for the other
	// replicas; withdraw removes its record. Neither blocks on the
	// network: the records are written in the background by run.
	publish(s *agentSession)
	withdraw(s *agentSession)
	// lookup returns the records of a broker's sessions on other replicas.
	lookup(ctx context.Context, broker string) ([]sessionRecord, error)
	// forget makes the next lookup of broker ask again: a record turned
	// out to be stale.
	forget(broker string)
	// broker returns a broker that the config does not define, or nil.
	broker(ctx context.Context, id string) (*brokerAuth, error)
	// run keeps this replica's records alive until ctx ends, then removes
	// them; close releases the connection once nothing uses it.
	run(ctx context.Context)
	close()
}

// sessionRecord is what a replica publishes about one of its sessions.
// Agent-supplied strings are truncated, as in logs.
type sessionRecord struct {
	Broker    string    `json:"broker"`
	Session   string    `json:"session"`
	Replica   string    `json:"replica"`   // the replica process's random id
	Advertise string    `json:"advertise"` // base URL of its internal listener
	Sites     []string  `json:"sites"`
	Since     time.Time `json:"since"`
	AgentID   string    `json:"agent_id"`
	Version   string    `json:"version"`
	Hostname  string    `json:"hostname"`
	Transport string    `json:"transport"`
}

func (r sessionRecord) hasSite(site string) bool { return slices.Contains(r.Sites, site) }

// memoryRegistry is registry.type memory: the gateway knows only the
// sessions of its own process, and only the brokers of its config.
type memoryRegistry struct{}

func (memoryRegistry) publish(*agentSession)  {}
func (memoryRegistry) withdraw(*agentSession) {}
func (memoryRegistry) lookup(context.Context, string) ([]sessionRecord, error) {
	return nil, nil
}
func (memoryRegistry) forget(string)                                       {}
func (memoryRegistry) broker(context.Context, string) (*brokerAuth, error) { return nil, nil }
func (memoryRegistry) run(ctx context.Context)                             { <-ctx.Done() }
func (memoryRegistry) close()                                              {}

var (
	_ sharedRegistry = memoryRegistry{}
	_ sharedRegistry = (*redisRegistry)(nil)
)
