package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/freeport"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
)

// testSecret is the cluster secret of the test replicas.
const testSecret = "0123456789abcdef0123456789abcdef-test-cluster-secret"

// startReplica starts a gateway with registry.type redis on srv, with the
// brokers of tok; change, if not nil, adjusts it further.
func startReplica(t *testing.T, srv *redistest.Server, tok testTokens, change func(*config.Gateway, *Options)) *testGateway {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "cluster.secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	internal := freePort(t)
	return startGatewayWith(t, tok, func(cfg *config.Gateway, o *Options) {
		cfg.Registry = config.Registry{Type: config.RegistryRedis, URL: srv.URL(), Advertise: "http://" + internal}
		cfg.Listen.Internal = internal
		cfg.Cluster.SecretFile = secretFile
		o.RegistryTTL, o.RegistryRefresh = 2*time.Second, 300*time.Millisecond
		if change != nil {
			change(cfg, o)
		}
	})
}

// startTwoReplicas starts replicas A and B of one cluster, with a Redis
// of their own and the test tokens.
func startTwoReplicas(t *testing.T) (a, b *testGateway) {
	t.Helper()
	srv := redistest.Start(t)
	tok := newTestTokens()
	return startReplica(t, srv, tok, nil), startReplica(t, srv, tok, nil)
}

func freePort(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitRemote waits until tg's status of acme shows the session id held
// by another replica.
func (tg *testGateway) waitRemote(t *testing.T, broker, connector, id string) {
	t.Helper()
	testwait.For(t, 5*time.Second, "session "+id+" visible at "+tg.api, func() bool {
		for _, s := range tg.status(t, broker, connector).Sessions {
			if s.ID == id && s.Replica != "" && s.Replica != "http://"+tg.internal {
				return true
			}
		}
		return false
	})
}

// TestClusterForwarding: an agent connected to replica A only; calls
// through replica B reach it, unchanged, with the connector token left at
// B and B's request id; the site check is forwarded too.
func TestClusterForwarding(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a, b := startTwoReplicas(t)
			agent := checkingAgent()
			onA := a.connect(t, tr, a.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(brokerhttp.HeaderOp) != "" {
					agent.ServeHTTP(w, r)
					return
				}
				echoHandler("onA").ServeHTTP(w, r)
			}))
			b.waitRemote(t, "acme", b.acmeConnector, onA.Welcome.SessionID)

			h := http.Header{}
			h.Set("Ox-Broker-Anything", "x")
			h.Set("X-Custom", "kept")
			resp, body := b.call(t, "POST", "/b/acme/jira/rest/api/3/issue/A%2FB?x=1%2F2&y", b.acmeConnector, h, `{"fields":{}}`)
			e := decodeEcho(t, resp, body)
			if e.Agent != "onA" || e.RequestURI != "/rest/api/3/issue/A%2FB?x=1%2F2&y" || e.Method != "POST" || e.Body != `{"fields":{}}` {
				t.Errorf("at the agent: got %s %s %q from %s, want POST /rest/api/3/issue/A%%2FB?x=1%%2F2&y with the body, from onA", e.Method, e.RequestURI, e.Body, e.Agent)
			}
			if e.HasAuth || strings.Contains(string(body), b.acmeConnector) {
				t.Error("the connector token reached the agent")
			}
			if e.Site != "jira" || e.Header.Get("X-Custom") != "kept" {
				t.Errorf("site %q, X-Custom %q; want jira, kept", e.Site, e.Header.Get("X-Custom"))
			}
			for k := range e.Header {
				if strings.HasPrefix(k, "Ox-Broker-") && k != brokerhttp.HeaderSite && k != brokerhttp.HeaderRequestID && k != brokerhttp.HeaderPublicBase {
					t.Errorf("header %s reached the agent", k)
				}
			}
			// The public base is where the connector came in (B's API),
			// not where B forwarded the call to.
			if got, want := e.Header.Get(brokerhttp.HeaderPublicBase), "http://"+b.api; got != want {
				t.Errorf("%s at the agent: got %q, want %q", brokerhttp.HeaderPublicBase, got, want)
			}
			id := resp.Header.Get(brokerhttp.HeaderRequestID)
			if id == "" || e.RequestID != id {
				t.Errorf("request id: the agent got %q, the connector %q; want the same", e.RequestID, id)
			}
			if !strings.Contains(b.logs.String(), "request_id="+id) || !strings.Contains(b.logs.String(), "forwarded_to=http://"+a.internal) {
				t.Errorf("B's log has no request line for %s forwarded to A", id)
			}
			if !strings.Contains(a.logs.String(), `msg="forwarded request" request_id=`+id) {
				t.Errorf("A's log has no forwarded request %s", id)
			}
			if got := counterValue(b.gw.metrics.forwarded.WithLabelValues("ok")); got != 1 {
				t.Errorf("B's forwarded{ok}: got %v, want 1", got)
			}
			if got := counterValue(a.gw.metrics.internal.WithLabelValues("200")); got != 1 {
				t.Errorf("A's internal{200}: got %v, want 1", got)
			}

			// A site the broker does not have, anywhere: at once.
			start := time.Now()
			resp, body = b.call(t, "GET", "/b/acme/nosite/x", b.acmeConnector, nil, "")
			brokerError(t, resp, body, http.StatusNotFound, brokerhttp.UnknownSite)
			if d := time.Since(start); d > time.Second {
				t.Errorf("unknown_site took %s; want no wait", d)
			}

			// The site check.
			resp, body = b.call(t, "POST", "/v1/brokers/acme/sites/jira/check", b.acmeConnector, nil, "")
			if resp.StatusCode != http.StatusOK || string(body) != checkReportJSON {
				t.Errorf("check through B: got %d %s, want 200 and the agent's report", resp.StatusCode, body)
			}
			if got, want := agent.Last(t).Header.Get(brokerhttp.HeaderRequestID), resp.Header.Get(brokerhttp.HeaderRequestID); got == "" || got != want {
				t.Errorf("check request id: agent %q, response %q", got, want)
			}
			resp, body = b.call(t, "POST", "/v1/brokers/acme/sites/nosite/check", b.acmeConnector, nil, "")
			brokerError(t, resp, body, http.StatusNotFound, brokerhttp.UnknownSite)
		})
	}
}

// TestClusterStreaming: a forwarded call streams both ways: the agent gets
// the start of the request body before the connector sends the rest, and
// the connector gets the start of the answer before the agent writes the
// rest.
func TestClusterStreaming(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a, b := startTwoReplicas(t)
			gotFirst := make(chan struct{})
			release := make(chan struct{})
			onA := a.connect(t, tr, a.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/upload":
					first := make([]byte, 5)
					if _, err := io.ReadFull(r.Body, first); err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					close(gotFirst)
					rest, _ := io.ReadAll(r.Body)
					fmt.Fprintf(w, "%s%s", first, rest)
				case "/download":
					io.WriteString(w, "part1")
					http.NewResponseController(w).Flush()
					select {
					case <-release:
					case <-time.After(10 * time.Second):
					}
					io.WriteString(w, "part2")
				}
			}))
			b.waitRemote(t, "acme", b.acmeConnector, onA.Welcome.SessionID)

			// Request body.
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", "http://"+b.api+"/b/acme/jira/upload", pr)
			req.Header.Set("Authorization", "Bearer "+b.acmeConnector)
			type result struct {
				body string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := b.client.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				done <- result{string(body), err}
			}()
			io.WriteString(pw, "first")
			select {
			case <-gotFirst:
			case <-time.After(5 * time.Second):
				t.Fatal("the start of the request body did not reach the agent before the rest was sent: the forwarded body is buffered")
			}
			io.WriteString(pw, "-second")
			pw.Close()
			if r := <-done; r.err != nil || r.body != "first-second" {
				t.Errorf("upload: got %q, %v; want first-second", r.body, r.err)
			}

			// Response body.
			req, _ = http.NewRequest("GET", "http://"+b.api+"/b/acme/jira/download", nil)
			req.Header.Set("Authorization", "Bearer "+b.acmeConnector)
			type first struct {
				resp *http.Response
				part string
				err  error
			}
			got := make(chan first, 1)
			go func() {
				resp, err := b.client.Do(req)
				if err != nil {
					got <- first{err: err}
					return
				}
				part := make([]byte, 5)
				_, err = io.ReadFull(resp.Body, part)
				got <- first{resp, string(part), err}
			}()
			var f first
			select {
			case f = <-got:
			case <-time.After(5 * time.Second):
				close(release)
				f = <-got
				if f.resp != nil {
					f.resp.Body.Close()
				}
				t.Fatal("the start of the answer did not reach the connector before the agent wrote the rest: the forwarded answer is buffered")
			}
			close(release)
			if f.err != nil || f.part != "part1" {
				t.Fatalf("first part: got %q, %v; want part1", f.part, f.err)
			}
			defer f.resp.Body.Close()
			if rest, err := io.ReadAll(f.resp.Body); err != nil || string(rest) != "part2" {
				t.Errorf("rest of the answer: got %q, %v; want part2", rest, err)
			}
		})
	}
}

// TestClusterInternalNeverForwards: the internal listener serves its own
// replica's sessions only; it answers 421 broker_offline, and forwards
// nothing, when another replica has the session.
func TestClusterInternalNeverForwards(t *testing.T) {
	a, b := startTwoReplicas(t)
	var served atomic.Int32
	onB := b.connect(t, tunnel.TransportTCP, b.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	a.waitRemote(t, "acme", a.acmeConnector, onB.Welcome.SessionID)

	raw := forward{secret: testSecret, replica: a.gw.cluster.id, method: "GET", target: "/b/acme/jira/x",
		broker: "acme", site: "jira", reqID: "req-1", at: time.Now()}.raw(a.internal)
	resp, body := rawRequest(t, a.internal, raw)
	brokerError(t, resp, body, http.StatusMisdirectedRequest, brokerhttp.BrokerOffline)
	if served.Load() != 0 || counterValue(a.gw.metrics.forwarded.WithLabelValues("ok")) != 0 {
		t.Error("the internal listener forwarded a request")
	}
}

// TestClusterPrefersLocal: with a session of the broker on both replicas,
// each serves its calls over its own.
func TestClusterPrefersLocal(t *testing.T) {
	a, b := startTwoReplicas(t)
	onA := a.connect(t, tunnel.TransportTCP, a.hello(), echoHandler("onA"))
	b.connect(t, tunnel.TransportTCP, b.hello(), echoHandler("onB"))
	b.waitRemote(t, "acme", b.acmeConnector, onA.Welcome.SessionID)
	for range 20 {
		resp, body := b.call(t, "GET", "/b/acme/jira/x", b.acmeConnector, nil, "")
		if e := decodeEcho(t, resp, body); e.Agent != "onB" {
			t.Fatalf("a call through B went to %s, want B's own session", e.Agent)
		}
	}
	if got := counterValue(b.gw.metrics.forwarded.WithLabelValues("ok")); got != 0 {
		t.Errorf("B forwarded %v calls, want 0", got)
	}
}

// TestClusterReplicaGone: the registry still names a session on a replica
// that is gone (killed: its record has not expired yet). A call passes it
// over and is served by the session that shows up locally meanwhile.
func TestClusterReplicaGone(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	b := startReplica(t, srv, tok, nil)
	rdb := newRedisClient(t, srv.URL())
	dead := freePort(t) // nothing listens there
	rec, _ := json.Marshal(sessionRecord{Broker: "acme", Session: "ghost", Replica: "dead", Advertise: "http://" + dead, Sites: []string{"jira"}})
	ctx := context.Background()
	rdb.Set(ctx, sessionKey("acme", "ghost"), rec, 10*time.Second)
	rdb.SAdd(ctx, indexKey("acme"), "ghost")

	r := b.callBeforeAgent(t, "/b/acme/jira/x", b.acmeConnector, "onB")
	t.Logf("served %s after the call, the local session came after 500ms", r.took.Round(time.Millisecond))
	if got := counterValue(b.gw.metrics.forwarded.WithLabelValues("unreachable")); got < 1 {
		t.Errorf("forwarded{unreachable}: got %v, want at least 1 (the dead replica was tried)", got)
	}
}

// TestClusterRedisDown: with Redis gone, each replica still serves its
// own sessions, answers broker_offline (quickly) for brokers it cannot
// locate, and forwards again once Redis is back.
func TestClusterRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	short := func(_ *config.Gateway, o *Options) { o.SessionWait = time.Second }
	a := startReplica(t, srv, tok, short)
	b := startReplica(t, srv, tok, short)
	onA := a.connect(t, tunnel.TransportTCP, a.hello(), echoHandler("acme-on-A"))
	h := b.hello()
	h.BrokerID, h.Token = "other", b.otherBroker
	b.connect(t, tunnel.TransportTCP, h, echoHandler("other-on-B"))
	b.waitRemote(t, "acme", b.acmeConnector, onA.Welcome.SessionID)
	if resp, body := b.call(t, "GET", "/b/acme/jira/x", b.acmeConnector, nil, ""); decodeEcho(t, resp, body).Agent != "acme-on-A" {
		t.Fatal("not forwarded before Redis went down")
	}

	srv.Stop()
	b.gw.shared.forget("acme") // what B looked up before is forgotten
	for _, c := range []struct {
		tg        *testGateway
		broker    string
		connector string
		agent     string
	}{{a, "acme", a.acmeConnector, "acme-on-A"}, {b, "other", b.otherConnector, "other-on-B"}} {
		start := time.Now()
		resp, body := c.tg.call(t, "GET", "/b/"+c.broker+"/jira/x", c.connector, nil, "")
		if e := decodeEcho(t, resp, body); e.Agent != c.agent {
			t.Errorf("local call to %s: served by %s", c.broker, e.Agent)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("local call to %s with Redis down took %s; want no wait for Redis", c.broker, d)
		}
	}
	start := time.Now()
	resp, body := b.call(t, "GET", "/b/acme/jira/x", b.acmeConnector, nil, "")
	took := time.Since(start)
	brokerError(t, resp, body, http.StatusBadGateway, brokerhttp.BrokerOffline)
	if !strings.Contains(string(body), "unreachable") {
		t.Errorf("message: got %s, want it to say the registry is unreachable", body)
	}
	if took > time.Second+2*redisTimeout+500*time.Millisecond {
		t.Errorf("broker_offline after %s; want within the session wait (1s) and a Redis timeout", took)
	}
	t.Logf("a broker that cannot be located with Redis down: broker_offline after %s (session wait 1s)", took.Round(time.Millisecond))

	srv.Restart()
	back := time.Now()
	testwait.For(t, 5*time.Second, "B forwards again", func() bool {
		resp, body, err := b.do("GET", "/b/acme/jira/x", b.acmeConnector, nil, "")
		return err == nil && resp.StatusCode == 200 && strings.Contains(string(body), "acme-on-A")
	})
	t.Logf("forwarding again %s after Redis restarted (refresh every 300ms)", time.Since(back).Round(10*time.Millisecond))
}

// connectNewco defines the broker newco in Redis and connects an agent of
// it to a, answering as newco-on-A; it returns newco's connector token.
func connectNewco(t *testing.T, srv *redistest.Server, a *testGateway) (string, *sessiontest.Agent) {
	t.Helper()
	brokerTok, connectorTok := NewToken(), NewToken()
	cfg := &config.Gateway{Registry: config.Registry{Type: config.RegistryRedis, URL: srv.URL()}}
	if err := AddBroker(context.Background(), cfg, "newco", HashToken(brokerTok), []string{HashToken(connectorTok)}); err != nil {
		t.Fatal(err)
	}
	h := a.hello()
	h.BrokerID, h.Token = "newco", brokerTok
	return connectorTok, a.connectAs(t, tunnel.TransportTCP, h, echoHandler("newco-on-A"), connectorTok)
}

// TestClusterBrokerFromRedis: a broker defined in Redis, not in any
// config, connects to one replica and is served through the other.
func TestClusterBrokerFromRedis(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	a := startReplica(t, srv, tok, nil)
	b := startReplica(t, srv, tok, nil)
	connectorTok, onA := connectNewco(t, srv, a)
	// A reads newco at its agent's hello; B at its next read of them all.
	testwait.For(t, 2*time.Second, "B reads newco", func() bool { return b.gw.known("newco") })
	b.waitRemote(t, "newco", connectorTok, onA.Welcome.SessionID)
	resp, body := b.call(t, "GET", "/b/newco/jira/x", connectorTok, nil, "")
	if e := decodeEcho(t, resp, body); e.Agent != "newco-on-A" {
		t.Errorf("served by %s", e.Agent)
	}
	resp, body = b.call(t, "GET", "/b/newco/jira/x", tok.acmeConnector, nil, "")
	brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
	if !strings.Contains(b.logs.String(), "broker=newco") {
		t.Error("no request line for newco")
	}
	// A broker of Redis is a label of the request metrics, once known.
	if got := counterValue(b.gw.metrics.requests.WithLabelValues("newco", "200")); got != 1 {
		t.Errorf(`requests_total{broker="newco",code="200"}: got %v, want 1`, got)
	}
}

// TestSessionWait: a call to a known broker without a session waits for
// one (a restarted gateway's agents are reconnecting) instead of failing
// at once; without one it fails after the wait; an unknown broker does
// not wait.
func TestSessionWait(t *testing.T) {
	tg := startGateway(t)
	r := tg.callBeforeAgent(t, "/b/acme/jira/x", tg.acmeConnector, "late")
	t.Logf("a call made 500ms before the agent connected was served after %s", r.took.Round(time.Millisecond))
	if r.took > 2*time.Second {
		t.Errorf("took %s, want soon after the agent connected", r.took)
	}
	if got := counterValue(tg.gw.metrics.sessionWaits.WithLabelValues("found")); got != 1 {
		t.Errorf("session_waits{found}: got %v, want 1", got)
	}

	r = <-tg.getInBackground("/b/other/jira/x", tg.otherConnector)
	if r.err != nil {
		t.Fatal(r.err)
	}
	brokerError(t, r.resp, r.body, http.StatusBadGateway, brokerhttp.BrokerOffline)
	if r.took < DefaultSessionWait-100*time.Millisecond || r.took > DefaultSessionWait+2*time.Second {
		t.Errorf("broker_offline after %s, want after the session wait (%s)", r.took, DefaultSessionWait)
	}
	r = <-tg.getInBackground("/b/nosuch/jira/x", tg.acmeConnector)
	if r.err != nil {
		t.Fatal(r.err)
	}
	brokerError(t, r.resp, r.body, http.StatusNotFound, brokerhttp.UnknownBroker)
	if r.took > 500*time.Millisecond {
		t.Errorf("unknown_broker after %s, want at once", r.took)
	}
}

// TestClusterSecretMismatch: replicas with different cluster secrets do
// not serve each other; the caller gets broker_offline, and the replica
// that forwarded says why in its log.
func TestClusterSecretMismatch(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	a := startReplica(t, srv, tok, nil)
	other := filepath.Join(t.TempDir(), "other.secret")
	if err := os.WriteFile(other, []byte("a-different-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startReplica(t, srv, tok, func(cfg *config.Gateway, _ *Options) { cfg.Cluster.SecretFile = other })
	onA := a.connect(t, tunnel.TransportTCP, a.hello(), echoHandler("onA"))
	b.waitRemote(t, "acme", b.acmeConnector, onA.Welcome.SessionID)

	resp, body := b.call(t, "GET", "/b/acme/jira/x", b.acmeConnector, nil, "")
	brokerError(t, resp, body, http.StatusBadGateway, brokerhttp.BrokerOffline)
	if got := counterValue(b.gw.metrics.forwarded.WithLabelValues("refused")); got != 1 {
		t.Errorf("forwarded{refused}: got %v, want 1", got)
	}
	if !strings.Contains(b.logs.String(), "same cluster secret") {
		t.Error("B's log does not point at the cluster secret")
	}
	// A secret too short to be one is refused at start.
	short := filepath.Join(t.TempDir(), "short.secret")
	os.WriteFile(short, []byte("short"), 0o600)
	cfg := *a.gw.cfg
	cfg.Cluster.SecretFile = short
	if _, err := New(&cfg, Options{}); err == nil || !strings.Contains(err.Error(), "cluster.secret_file") {
		t.Errorf("New with a 5-character secret: got %v, want a cluster.secret_file error", err)
	}
	// A secret others may change is refused at start, with the fix.
	writable := filepath.Join(t.TempDir(), "writable.secret")
	os.WriteFile(writable, []byte(testSecret), 0o600)
	os.Chmod(writable, 0o666)
	cfg.Cluster.SecretFile = writable
	if _, err := New(&cfg, Options{}); err == nil || !strings.Contains(err.Error(), "cluster.secret_file: "+writable+" is writable by its group or by others") ||
		!strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("New with a secret others may write: got %v, want a refusal with the chmod", err)
	}
}

// TestClusterStrangersCostNoRedis: connector calls with invented broker
// ids and tokens that hash to nothing known are answered 401 from memory:
// no Redis round trip (with Redis down they are still 401 at once, and no
// registry error is counted), and the brokers read from Redis keep being
// served meanwhile.
func TestClusterStrangersCostNoRedis(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	a := startReplica(t, srv, tok, nil)
	connectorTok, _ := connectNewco(t, srv, a)

	reg := a.gw.shared.(*redisRegistry)
	memory := func() (defined, lookups int) {
		return len(reg.defined.Load().byID), reg.lookups.Len()
	}
	definedBefore, lookupsBefore := memory()
	strangers := func(from int) {
		t.Helper()
		for i := from; i < from+5; i++ {
			start := time.Now()
			resp, body := a.call(t, "GET", fmt.Sprintf("/b/stranger-%d/jira/x", i), NewToken(), nil, "")
			brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
			if d := time.Since(start); d > redisTimeout {
				t.Errorf("a stranger's call took %s; want an answer from memory", d)
			}
		}
	}
	strangers(0)
	if d, l := memory(); d != definedBefore || l != lookupsBefore {
		t.Errorf("after strangers' calls: %d brokers, %d lookups remembered; want %d, %d as before", d, l, definedBefore, lookupsBefore)
	}
	srv.Stop()
	errorsBefore := counterValue(a.gw.metrics.registryErrors.WithLabelValues("broker"))
	strangers(5)
	if got := counterValue(a.gw.metrics.registryErrors.WithLabelValues("broker")); got != errorsBefore {
		t.Errorf("registry_errors_total{op=broker}: got %v, want %v: strangers' calls asked Redis", got, errorsBefore)
	}
	resp, body := a.call(t, "GET", "/b/newco/jira/x", connectorTok, nil, "")
	if e := decodeEcho(t, resp, body); e.Agent != "newco-on-A" {
		t.Errorf("newco with Redis down: served by %s", e.Agent)
	}
}

// TestClusterRedisBrokerTokenOnUnknownBroker: a connector token of a
// broker defined in Redis, used on the path of a broker that does not
// exist, gets 404 unknown_broker, as one of the config does.
func TestClusterRedisBrokerTokenOnUnknownBroker(t *testing.T) {
	srv := redistest.Start(t)
	tok := newTestTokens()
	a := startReplica(t, srv, tok, nil)
	connectorTok, _ := connectNewco(t, srv, a)

	for _, c := range []struct{ name, token string }{{"config broker's token", tok.acmeConnector}, {"Redis broker's token", connectorTok}} {
		resp, body := a.call(t, "GET", "/b/nosuch/jira/x", c.token, nil, "")
		brokerError(t, resp, body, http.StatusNotFound, brokerhttp.UnknownBroker)
		if t.Failed() {
			t.Fatalf("%s on an unknown broker's path", c.name)
		}
	}
	// On an existing broker's path, a token of another is wrong (401),
	// whichever defines them.
	for _, c := range []struct{ path, token string }{{"/b/acme/jira/x", connectorTok}, {"/b/newco/jira/x", tok.acmeConnector}} {
		resp, body := a.call(t, "GET", c.path, c.token, nil, "")
		brokerError(t, resp, body, http.StatusUnauthorized, brokerhttp.Unauthorized)
	}
}

// timedCall is the outcome of a connector call, and how long it took.
type timedCall struct {
	resp *http.Response
	body []byte
	err  error
	took time.Duration
}

// getInBackground makes a GET of path with token in a goroutine of its
// own; the channel gives the outcome once there is one.
func (tg *testGateway) getInBackground(path, token string) <-chan timedCall {
	done := make(chan timedCall, 1)
	start := time.Now()
	go func() {
		resp, body, err := tg.do("GET", path, token, nil, "")
		done <- timedCall{resp, body, err, time.Since(start)}
	}()
	return done
}

// callBeforeAgent makes a GET of path with token, connects an agent
// named agent 500 ms later, and checks that the call waited for that
// agent and was served by it.
func (tg *testGateway) callBeforeAgent(t *testing.T, path, token, agent string) timedCall {
	t.Helper()
	done := tg.getInBackground(path, token)
	time.Sleep(500 * time.Millisecond)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), echoHandler(agent))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if e := decodeEcho(t, r.resp, r.body); e.Agent != agent {
		t.Errorf("served by %s, want %s", e.Agent, agent)
	}
	return r
}

// TestSkipRouteWindow: a replica or session that failed a forward is
// passed over for skipFor, then tried again; the others are not; expired
// entries go at the next skip; a gateway without a cluster skips nothing.
func TestSkipRouteWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &cluster{skip: map[string]time.Time{}}
		onB := sessionRecord{Session: "s1", Advertise: "http://b:8081"}
		onC := sessionRecord{Session: "s2", Advertise: "http://c:8081"}
		c.skipRoute("replica " + onB.Advertise)
		if !c.skipped(onB) || c.skipped(onC) {
			t.Fatalf("replica b skipped: got b %v, c %v; want b only", c.skipped(onB), c.skipped(onC))
		}
		time.Sleep(skipFor - time.Nanosecond)
		if !c.skipped(onB) {
			t.Fatalf("just before %s: b no longer skipped", skipFor)
		}
		c.skipRoute("session " + onC.Session)
		time.Sleep(time.Nanosecond)
		if c.skipped(onB) || !c.skipped(onC) {
			t.Fatalf("after %s: got b %v, c %v skipped; want c only (its session skipped later)", skipFor, c.skipped(onB), c.skipped(onC))
		}
		time.Sleep(time.Millisecond)
		c.skipRoute("session s3")
		if len(c.skip) != 2 {
			t.Errorf("skip entries: got %v, want the expired one dropped", c.skip)
		}
		var none *cluster
		if none.skipped(onB) {
			t.Error("a gateway without a cluster skipped a route")
		}
	})
}
