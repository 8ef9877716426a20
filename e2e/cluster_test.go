package e2e

// The gateway as a cluster (registry.type redis): a real Redis
// (redis-server on a loopback port, with a password), two gateway
// replicas, and an agent with one connection and both replicas as its
// addresses: it is connected to one of them (the owner) only. Calls
// through the other are forwarded to the owner; the owner killed or
// drained moves the agent to the other; Redis going away costs only the
// calls that need it. Each scenario logs what it measured as
// "MEASURE ..." lines.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// cluster is an env whose gateway is two replicas sharing a Redis. It
// has a second broker, "other", for agents of another customer.
type cluster struct {
	t              *testing.T
	e              *env
	redis          *redistest.Server
	redisPassword  string
	secretFile     string
	otherBroker    string
	otherConnector string
	a, b           *replica
}

// replica is one gateway process of a cluster, on ports that stay the
// same across restarts.
type replica struct {
	name                         string
	tunnel, api, admin, internal string
	cfg                          string
	p                            *proc
}

// advertise is the replica's registry.advertise, as the status shows it.
func (r *replica) advertise() string { return "http://" + r.internal }

func newCluster(t *testing.T) *cluster {
	t.Helper()
	e := newLowPortEnv(t)
	c := &cluster{
		t:              t,
		e:              e,
		redisPassword:  randomToken("redis-pass-"),
		otherBroker:    randomToken("other-broker-tok-"),
		otherConnector: randomToken("other-connector-tok-"),
	}
	c.redis = redistest.Start(t, redistest.Password(c.redisPassword))
	c.secretFile = e.writeFile("cluster.secret", randomToken("cluster-secret-")+"\n")
	c.a, c.b = c.newReplica("a"), c.newReplica("b")
	return c
}

func (c *cluster) newReplica(name string) *replica {
	c.t.Helper()
	r := &replica{name: name, tunnel: lowPortAddr(c.t, true), api: lowPortAddr(c.t, false),
		admin: lowPortAddr(c.t, false), internal: lowPortAddr(c.t, false)}
	// The password comes from the environment, as in production.
	yaml := c.e.gatewayYAML(gatewayyaml.Config{
		Tunnel: r.tunnel, API: r.api, Admin: r.admin, Internal: r.internal,
		Brokers:  []gatewayyaml.Broker{{ID: "other", Token: c.otherBroker, ConnectorTokens: []string{c.otherConnector}}},
		LogLevel: "debug",
		More: fmt.Sprintf(`registry:
  type: redis
  url: redis://:${REDIS_PASSWORD}@%s/0
  advertise: %s
cluster:
  secret_file: %s
`, c.redis.Addr, r.advertise(), c.secretFile),
	})
	r.cfg = c.e.writeFile("gateway-"+name+".yaml", yaml)
	return r
}

// start runs (or runs again) replica r.
func (c *cluster) start(r *replica) *proc {
	c.t.Helper()
	r.p = start(c.t, "gateway "+r.name, bins.gateway, []string{"REDIS_PASSWORD=" + c.redisPassword}, "run", "--config", r.cfg)
	r.p.waitOutput(c.t, "gateway listening", 10*time.Second)
	return r.p
}

// startAgent starts the agent of acme with gateway.address A and
// gateway.addresses [B], one connection: it is on one replica, the
// owner, until that one goes. It returns the owner and the other.
func (c *cluster) startAgent(tr string) (agent *proc, owner, other *replica) {
	c.t.Helper()
	agent = c.e.startAgentNamed("acme", agentOpts{transport: tr, address: c.a.tunnel, addresses: []string{c.b.tunnel}, connections: 1})
	var st gateway.BrokerStatus
	if _, ok := testwait.Until(15*time.Second, func() bool {
		st = c.status(c.a, "acme", c.e.ConnectorToken)
		return len(st.Sessions) == 1 && st.Sessions[0].Transport == tr
	}); !ok {
		c.t.Fatalf("acme's sessions are %+v, want one over %s", st.Sessions, tr)
	}
	owner, other = c.a, c.b
	if st.Sessions[0].Replica == c.b.advertise() {
		owner, other = c.b, c.a
	}
	c.waitSessionOn(other, owner, tr, 15*time.Second)
	return agent, owner, other
}

// callResult is one connector call through a replica.
type callResult struct {
	status    int
	code      string // Ox-Broker-Error
	requestID string
	body      string
	err       error
	took      time.Duration
}

func (r callResult) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s %s", r.status, r.code, strings.TrimSpace(r.body))
}

// call sends one connector call through replica r, safely from any
// goroutine.
func (c *cluster) call(r *replica, method, path, token, body string) callResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, b, err := connectortest.Call(ctx, http.DefaultClient, method, "http://"+r.api+path, token, nil, body)
	if resp == nil {
		return callResult{err: err, took: time.Since(start)}
	}
	return callResult{status: resp.StatusCode, code: resp.Header.Get(brokerhttp.HeaderError),
		requestID: resp.Header.Get(brokerhttp.HeaderRequestID), body: string(b), err: err, took: time.Since(start)}
}

// myself is GET /rest/api/3/myself of acme's site through r.
func (c *cluster) myself(r *replica) callResult {
	return c.call(r, "GET", "/b/acme/jira/rest/api/3/myself", c.e.ConnectorToken, "")
}

// status is GET /v1/brokers/{broker} through r.
func (c *cluster) status(r *replica, broker, token string) gateway.BrokerStatus {
	c.t.Helper()
	res := c.call(r, "GET", "/v1/brokers/"+broker, token, "")
	var st gateway.BrokerStatus
	if res.err != nil || res.status != 200 || jsonUnmarshal([]byte(res.body), &st) != nil {
		c.t.Fatalf("GET /v1/brokers/%s through %s: %s", broker, r.name, res)
	}
	return st
}

// waitSessionOn waits until replica via shows a session of acme held by
// replica on, over transport tr.
func (c *cluster) waitSessionOn(via, on *replica, tr string, timeout time.Duration) {
	c.t.Helper()
	var st gateway.BrokerStatus
	if _, ok := testwait.Until(timeout, func() bool {
		st = c.status(via, "acme", c.e.ConnectorToken)
		return slices.ContainsFunc(st.Sessions, func(s gateway.SessionStatus) bool {
			return s.Replica == on.advertise() && s.Transport == tr
		})
	}); !ok {
		c.t.Fatalf("through %s: acme's sessions are %+v, want one on %s (%s) over %s", via.name, st.Sessions, on.name, on.advertise(), tr)
	}
}

// metric reads one sample of a replica's /metrics.
func metric(t *testing.T, r *replica, series string) float64 {
	t.Helper()
	v, _ := metricValue(scrapeMetrics(t, r.admin), series)
	return v
}

// TestCluster runs the cluster scenarios at once, over both transports:
// they spend their time waiting for processes and timeouts.
func TestCluster(t *testing.T) {
	concurrently(t, slices.Concat(
		overTransports("forwarded", testClusterForwarded),
		overTransports("kill9-replica", testClusterKill9),
		overTransports("drain-replica-under-load", testClusterDrain),
		overTransports("redis-down", testClusterRedisDown)))
}

// testClusterForwarded: calls through the replica without the session
// reach the agent on the other (the owner); Jira sees the site's
// credentials and nothing of the connector's; the request id is the same
// at both replicas, the agent and the connector.
func testClusterForwarded(t *testing.T, tr string) {
	c := newCluster(t)
	c.start(c.a)
	c.start(c.b)
	agent, owner, other := c.startAgent(tr)
	e := c.e
	e.apiAddr = other.api // e.jiraCall goes through the replica without the session
	resp, body := e.jiraCall("POST", "/rest/api/3/issue", `{"fields":{"project":{"key":"OX"},"summary":"Forwarded","issuetype":{"name":"Bug"}}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create issue through %s: %d %s", other.name, resp.StatusCode, body)
	}
	id := resp.Header.Get(brokerhttp.HeaderRequestID)
	resp, body = e.jiraCall("GET", "/rest/api/3/issue/OX-1", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Forwarded") {
		t.Fatalf("get issue through %s: %d %s", other.name, resp.StatusCode, body)
	}
	// Refused by the agent's allowlist: the agent's error comes back as
	// it is.
	resp, body = e.jiraCall("POST", "/rest/api/3/user", `{}`)
	if resp.StatusCode != 403 || resp.Header.Get(brokerhttp.HeaderError) != string(brokerhttp.PathNotAllowed) {
		t.Errorf("create user: got %d %s, want 403 path_not_allowed", resp.StatusCode, body)
	}

	reqs := e.Jira.Requests()
	if len(reqs) != 2 {
		t.Errorf("Jira saw %d requests, want 2", len(reqs))
	}
	e.checkJiraSaw(t, reqs)
	if id == "" {
		t.Fatal("no request id in the answer")
	}
	if _, ok := testwait.Until(5*time.Second, func() bool { // logs are written every 100 ms
		return strings.Contains(agent.out.String(), "request_id="+id) &&
			strings.Contains(owner.p.out.String(), `msg="forwarded request" request_id=`+id) &&
			strings.Contains(other.p.out.String(), "request_id="+id) &&
			strings.Contains(other.p.out.String(), "forwarded_to="+owner.advertise())
	}); !ok {
		t.Errorf("request id %s is not in the logs of both replicas and the agent (with forwarded_to=%s)", id, owner.advertise())
	}
	if got := metric(t, other, `oxbroker_gateway_forwarded_requests_total{outcome="ok"}`); got != 3 {
		t.Errorf(`oxbroker_gateway_forwarded_requests_total{outcome="ok"} of %s: got %v, want 3`, other.name, got)
	}
	if got := metric(t, owner, `oxbroker_gateway_internal_requests_total{code="201"}`); got != 1 {
		t.Errorf(`oxbroker_gateway_internal_requests_total{code="201"} of %s: got %v, want 1`, owner.name, got)
	}

	// What forwarding costs: the same call, local and forwarded.
	const n = 40
	median := func(r *replica) time.Duration {
		var d []time.Duration
		for range n {
			res := c.myself(r)
			if res.err != nil || res.status != 200 {
				t.Fatalf("myself through %s: %s", r.name, res)
			}
			d = append(d, res.took)
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[n/2]
	}
	local, forwarded := median(owner), median(other)
	t.Logf("MEASURE %s: median of %d calls: local %s, forwarded %s",
		t.Name(), n, local.Round(10*time.Microsecond), forwarded.Round(10*time.Microsecond))
}

// testClusterKill9: kill -9 of the replica holding the agent's session
// (A below); the agent moves to the other (B), and calls through B are
// served again within seconds; A's session record expires.
func testClusterKill9(t *testing.T, tr string) {
	c := newCluster(t)
	c.start(c.a)
	c.start(c.b)
	_, a, b := c.startAgent(tr)
	if r := c.myself(b); r.status != 200 {
		t.Fatalf("through %s before the kill: %s", b.name, r)
	}

	a.p.kill()
	killed := time.Now()
	var last callResult
	took, ok := testwait.Until(15*time.Second, func() bool {
		last = c.myself(b)
		return last.err == nil && last.status == 200
	})
	measure(t, "served through the other replica again after kill -9 of the agent's", took)
	if !ok {
		t.Fatalf("calls through %s not served within 15 s of kill -9 of %s; last: %s", b.name, a.name, last)
	}
	c.waitSessionOn(b, b, tr, 5*time.Second)
	// The dead replica's record is gone by its TTL (10 s) at the latest.
	if _, ok := testwait.Until(gateway.DefaultRecordTTL+3*time.Second-time.Since(killed), func() bool {
		for _, s := range c.status(b, "acme", c.e.ConnectorToken).Sessions {
			if s.Replica == a.advertise() {
				return false
			}
		}
		return true
	}); !ok {
		t.Errorf("the session record of %s is still in the registry %s after kill -9", a.name, time.Since(killed).Round(time.Second))
	}
	measure(t, "the killed replica's session record gone (TTL 10 s)", time.Since(killed))
}

// testClusterDrain: SIGTERM to the replica holding the agent's session
// (A below) under a steady load through the other (B); the agent moves to
// B and no call is lost; A removes its records on the way out.
func testClusterDrain(t *testing.T, tr string) {
	const rate = 25
	c := newCluster(t)
	c.start(c.a)
	c.start(c.b)
	_, a, b := c.startAgent(tr)
	e := c.e
	e.apiAddr = b.api // the load goes through B
	e.Jira.Reset()
	e.Jira.SetDelay(50 * time.Millisecond)

	stop := e.steadyLoad(rate, loadTimeout)
	time.Sleep(2 * time.Second)
	term := time.Now()
	a.p.cmd.Process.Signal(syscall.SIGTERM)
	// When the agent's new session on B shows, B's local ones first.
	moved := make(chan time.Duration, 1)
	go func() {
		took, _ := testwait.Until(15*time.Second, func() bool {
			res := c.call(b, "GET", "/v1/brokers/acme", c.e.ConnectorToken, "")
			var st gateway.BrokerStatus
			return res.status == 200 && jsonUnmarshal([]byte(res.body), &st) == nil &&
				slices.ContainsFunc(st.Sessions, func(s gateway.SessionStatus) bool { return s.Replica == b.advertise() })
		})
		moved <- took
	}()
	exited := a.p.terminated(t, 40*time.Second)
	// Removed on the way out, not left to expire: gone from what B sees
	// well within the records' TTL (B caches lookups for 250 ms).
	var left []gateway.SessionStatus
	if _, ok := testwait.Until(2*time.Second, func() bool {
		left = slices.DeleteFunc(c.status(b, "acme", c.e.ConnectorToken).Sessions, func(s gateway.SessionStatus) bool { return s.Replica != a.advertise() })
		return len(left) == 0
	}); !ok {
		t.Errorf("sessions %+v of %s are still in the registry 2 s after it exited (TTL %s)", left, a.name, gateway.DefaultRecordTTL)
	}
	c.waitSessionOn(b, b, tr, 15*time.Second)
	time.Sleep(2 * time.Second)
	results := stop()

	ok := countOK(t, results, term)
	if ok < 3*rate {
		t.Errorf("only %d calls succeeded: the load did not run", ok)
	}
	t.Logf("MEASURE %s: %d calls at %d/s through the other replica: %d ok, %d failed; the agent's session was on the other replica %s after SIGTERM, the drained replica exited after %s",
		t.Name(), len(results), rate, ok, len(results)-ok, (<-moved).Round(10*time.Millisecond), exited.Sub(term).Round(10*time.Millisecond))
}

// testClusterRedisDown: with Redis gone, A still serves acme (its own
// session) and B still serves other (its own), while each answers 502
// broker_offline for the broker it cannot locate; once Redis is back they
// register again and forward.
func testClusterRedisDown(t *testing.T, tr string) {
	c := newCluster(t)
	c.start(c.a)
	c.start(c.b)
	c.e.startAgentNamed("acme", agentOpts{transport: tr, address: c.a.tunnel, connections: 1})
	c.e.startAgentNamed("other", agentOpts{transport: tr, broker: "other", brokerToken: c.otherBroker,
		address: c.b.tunnel, connections: 1})
	c.waitSessionOn(c.b, c.a, tr, 15*time.Second)
	other := func(r *replica) callResult {
		return c.call(r, "GET", "/b/other/jira/rest/api/3/myself", c.otherConnector, "")
	}
	if _, ok := testwait.Until(15*time.Second, func() bool { return other(c.a).status == 200 }); !ok {
		t.Fatalf("other through A (forwarded to B) before Redis went down: %s", other(c.a))
	}
	for _, r := range []*replica{c.a, c.b} {
		if res := c.myself(r); res.status != 200 {
			t.Fatalf("acme through %s before Redis went down: %s", r.name, res)
		}
	}

	c.redis.Stop()
	time.Sleep(time.Second) // past what the replicas looked up before
	for _, tc := range []struct {
		name string
		res  callResult
		want int
	}{
		{"acme through A (local)", c.myself(c.a), 200},
		{"other through B (local)", other(c.b), 200},
		{"acme through B (cannot be located)", c.myself(c.b), 502},
		{"other through A (cannot be located)", other(c.a), 502},
	} {
		switch {
		case tc.res.err != nil || tc.res.status != tc.want:
			t.Errorf("%s with Redis down: got %s, want %d", tc.name, tc.res, tc.want)
		case tc.want == 502 && tc.res.code != string(brokerhttp.BrokerOffline):
			t.Errorf("%s with Redis down: got %s, want broker_offline", tc.name, tc.res)
		case tc.want == 200 && tc.res.took > time.Second:
			t.Errorf("%s with Redis down took %s: a local call must not wait for Redis", tc.name, tc.res.took)
		case tc.want == 502 && tc.res.took > gateway.DefaultSessionWait+2*time.Second:
			t.Errorf("%s with Redis down took %s: want the session wait (%s) and short Redis timeouts at most", tc.name, tc.res.took, gateway.DefaultSessionWait)
		}
		t.Logf("MEASURE %s: %s with Redis down: %d in %s", t.Name(), tc.name, tc.res.status, tc.res.took.Round(time.Millisecond))
	}
	if got := metric(t, c.b, `oxbroker_gateway_registry_errors_total{op="lookup"}`); got == 0 {
		t.Error(`B's oxbroker_gateway_registry_errors_total{op="lookup"} did not count the failures`)
	}

	c.redis.Restart()
	for _, tc := range []struct {
		name string
		call func() callResult
	}{
		{"acme through B", func() callResult { return c.myself(c.b) }},
		{"other through A", func() callResult { return other(c.a) }},
	} {
		var last callResult
		took, ok := testwait.Until(10*time.Second, func() bool { last = tc.call(); return last.status == 200 })
		if !ok {
			t.Errorf("%s: not served within 10 s of Redis's return; last: %s", tc.name, last)
		}
		measure(t, tc.name+" served again after Redis returned (empty)", took)
	}
	// Both replicas said Redis was gone, and that it came back, without
	// the password (the secret scan of the run checks every output).
	for _, r := range []*replica{c.a, c.b} {
		if _, ok := testwait.Until(5*time.Second, func() bool { // logs are written every 100 ms
			out := r.p.out.String()
			return strings.Contains(out, "session registry error") && strings.Contains(out, "session registry reachable again")
		}); !ok {
			t.Errorf("gateway %s did not log the registry's loss and return", r.name)
		}
		if !strings.Contains(r.p.out.String(), "url=redis://:REDACTED@") {
			t.Errorf("gateway %s did not log the registry URL, redacted", r.name)
		}
	}
	for _, r := range []*replica{c.a, c.b} {
		if strings.Contains(r.p.out.String(), c.redisPassword) {
			t.Errorf("gateway %s logged the Redis password", r.name)
		}
	}
}
