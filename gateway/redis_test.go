package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Short timings for the registry tests: records live 1 s and are
// refreshed every 200 ms.
const (
	testTTL     = time.Second
	testRefresh = 200 * time.Millisecond
)

// testReplica is a redisRegistry with its run loop, as one replica has it.
type testReplica struct {
	*redisRegistry
	logs    *syncBuffer
	metrics *metrics
	stop    context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

func newTestReplica(t *testing.T, url, name string) *testReplica {
	t.Helper()
	logs := &syncBuffer{}
	m := newMetrics(prometheus.NewRegistry())
	cfg := &config.Gateway{Registry: config.Registry{Type: config.RegistryRedis, URL: url, Advertise: "http://" + name + ".internal:8081"}}
	r, err := newRedisRegistry(cfg, name, Options{RegistryTTL: testTTL, RegistryRefresh: testRefresh},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &testReplica{redisRegistry: r, logs: logs, metrics: m, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		r.run(ctx)
	}()
	t.Cleanup(func() {
		tr.leave()
		r.close()
		if t.Failed() {
			t.Logf("log of replica %s:\n%s", name, logs)
		}
	})
	return tr
}

// leave ends the run loop, which removes the replica's records.
func (r *testReplica) leave() {
	r.once.Do(func() {
		r.stop()
		<-r.done
	})
}

// fresh looks a broker up, past the lookup cache.
func (r *testReplica) fresh(t *testing.T, broker string) []sessionRecord {
	t.Helper()
	r.forget(broker)
	recs, err := r.lookup(context.Background(), broker)
	if err != nil {
		t.Fatalf("lookup(%s): %v", broker, err)
	}
	return recs
}

func recordIDs(recs []sessionRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Session)
	}
	slices.Sort(out)
	return out
}

func newRedisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.DisableIdentity = true
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisRegistryRecords(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestReplica(t, srv.URL(), "a")
	b := newTestReplica(t, srv.URL(), "b")
	rdb := newRedisClient(t, srv.URL())

	s1 := fakeSession("s1", "acme", "jira", "wiki")
	s1.hello.AgentID, s1.hello.AgentVersion, s1.hello.Hostname = "agent-1", "1.2.3", "host-1"
	a.publish(s1)
	a.publish(fakeSession("o1", "other", "jira"))

	var recs []sessionRecord
	testwait.For(t, 2*time.Second, "b sees a's session", func() bool {
		recs = b.fresh(t, "acme")
		return len(recs) == 1
	})
	got := recs[0]
	want := sessionRecord{Broker: "acme", Session: "s1", Replica: "a", Advertise: "http://a.internal:8081",
		Sites: []string{"jira", "wiki"}, Since: s1.since.UTC(), AgentID: "agent-1", Version: "1.2.3", Hostname: "host-1"}
	if !got.Since.Equal(want.Since) || !slices.Equal(got.Sites, want.Sites) {
		t.Errorf("record: got %+v, want %+v", got, want)
	}
	got.Since, got.Sites, want.Since, want.Sites = time.Time{}, nil, time.Time{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record: got %+v, want %+v", got, want)
	}
	if recs := a.fresh(t, "acme"); len(recs) != 0 {
		t.Errorf("a's lookup of its own broker: got %v, want none (its own sessions are known locally)", recordIDs(recs))
	}
	if got := recordIDs(b.fresh(t, "other")); !slices.Equal(got, []string{"o1"}) {
		t.Errorf("b's lookup of other: got %v, want [o1]", got)
	}

	// The keys of the schema, with a TTL no longer than the record's.
	for _, key := range []string{"oxbroker:session:acme:s1", "oxbroker:sessions:acme"} {
		ttl, err := rdb.PTTL(context.Background(), key).Result()
		if err != nil || ttl <= 0 || ttl > testTTL {
			t.Errorf("PTTL %s: got %v, %v; want within (0, %s]", key, ttl, err, testTTL)
		}
	}

	// New sites are published.
	s1.setSites([]tunnel.SiteInfo{{Name: "confluence"}})
	a.publish(s1)
	testwait.For(t, 2*time.Second, "b sees the new sites", func() bool {
		recs := b.fresh(t, "acme")
		return len(recs) == 1 && slices.Equal(recs[0].Sites, []string{"confluence"})
	})

	// A second replica's session of the same broker joins the index.
	b.publish(fakeSession("s2", "acme", "jira"))
	testwait.For(t, 2*time.Second, "a sees b's session", func() bool {
		return slices.Equal(recordIDs(a.fresh(t, "acme")), []string{"s2"})
	})

	// Withdrawn at once, not at the TTL.
	start := time.Now()
	a.withdraw(s1)
	testwait.For(t, testTTL/2, "s1 withdrawn", func() bool { return len(b.fresh(t, "acme")) == 0 })
	t.Logf("withdrawn record gone after %s", time.Since(start).Round(time.Millisecond))
	if n, _ := rdb.Exists(context.Background(), "oxbroker:session:acme:s1").Result(); n != 0 {
		t.Error("the key of a withdrawn session is still there")
	}
}

// TestRedisRegistryExpiry: the records of a replica that stops
// refreshing (it died: kill -9) expire within the TTL; those of a live
// replica outlive it, being refreshed.
func TestRedisRegistryExpiry(t *testing.T) {
	srv := redistest.Start(t)
	live := newTestReplica(t, srv.URL(), "live")
	reader := newTestReplica(t, srv.URL(), "reader")

	// A dead replica: its records were written once (as by its run loop)
	// and nothing refreshes them.
	dead, err := newRedisRegistry(&config.Gateway{Registry: config.Registry{Type: config.RegistryRedis, URL: srv.URL(), Advertise: "http://dead:8081"}},
		"dead", Options{RegistryTTL: testTTL, RegistryRefresh: testRefresh}, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.close()
	dead.publish(fakeSession("d1", "acme", "jira"))
	dead.write(true)
	wrote := time.Now()
	live.publish(fakeSession("l1", "acme", "jira"))

	testwait.For(t, 2*time.Second, "both records visible", func() bool {
		return slices.Equal(recordIDs(reader.fresh(t, "acme")), []string{"d1", "l1"})
	})
	testwait.For(t, testTTL+time.Second, "the dead replica's record expires", func() bool {
		return slices.Equal(recordIDs(reader.fresh(t, "acme")), []string{"l1"})
	})
	gone := time.Since(wrote)
	t.Logf("the record of a replica that stopped refreshing was gone %s after its last write (TTL %s)", gone.Round(10*time.Millisecond), testTTL)
	if gone < testTTL-100*time.Millisecond {
		t.Errorf("the record expired after %s, before its TTL %s", gone, testTTL)
	}
	// Several TTLs later the live replica's record is still there: once
	// its refreshes have moved its expiry 3 TTLs past the dead one's write.
	rdb := newRedisClient(t, srv.URL())
	testwait.For(t, 3*testTTL+2*time.Second, "the live record refreshed to expire 3 TTLs after the dead one's write", func() bool {
		ms, err := rdb.PExpireTime(context.Background(), sessionKey("acme", "l1")).Result()
		return err == nil && time.UnixMilli(ms.Milliseconds()).After(wrote.Add(3*testTTL))
	})
	if got := recordIDs(reader.fresh(t, "acme")); !slices.Equal(got, []string{"l1"}) {
		t.Errorf("after 3 TTLs: got %v, want [l1] (refreshed)", got)
	}
	// The expired id was cleaned out of the index.
	if ids, _ := rdb.SMembers(context.Background(), "oxbroker:sessions:acme").Result(); !slices.Equal(ids, []string{"l1"}) {
		t.Errorf("index after expiry: got %v, want [l1]", ids)
	}

	// A clean exit removes the records at once.
	start := time.Now()
	live.leave()
	if got := reader.fresh(t, "acme"); len(got) != 0 {
		t.Errorf("after the replica left: got %v, want none", recordIDs(got))
	}
	t.Logf("records removed %s after the replica left", time.Since(start).Round(time.Millisecond))
	live.publish(fakeSession("l2", "acme", "jira")) // after leaving: ignored
	live.write(true)                                // by the write that would publish it
	if got := reader.fresh(t, "acme"); len(got) != 0 {
		t.Errorf("a replica that left published %v", recordIDs(got))
	}
}

// TestRedisRegistryRedisRestart: Redis restarts empty (no persistence);
// the replicas re-register their live sessions by themselves, and lookups
// fail fast while it is down.
func TestRedisRegistryRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestReplica(t, srv.URL(), "a")
	b := newTestReplica(t, srv.URL(), "b")
	a.publish(fakeSession("s1", "acme", "jira"))
	testwait.For(t, 2*time.Second, "b sees s1", func() bool { return len(b.fresh(t, "acme")) == 1 })

	srv.Stop()
	start := time.Now()
	b.forget("acme")
	if _, err := b.lookup(context.Background(), "acme"); err == nil {
		t.Error("lookup with Redis down: got no error")
	}
	if d := time.Since(start); d > 2*redisTimeout {
		t.Errorf("lookup with Redis down took %s, want at most %s", d, 2*redisTimeout)
	}
	// A session that comes and one that goes while Redis is down.
	s2 := fakeSession("s2", "acme", "jira")
	a.publish(s2)
	a.publish(fakeSession("s3", "acme", "jira"))
	a.withdraw(s2)
	testwait.For(t, 2*time.Second, "publish errors counted", func() bool {
		return counterValue(a.metrics.registryErrors.WithLabelValues("publish")) > 0
	})

	srv.Restart()
	restarted := time.Now()
	testwait.For(t, testRefresh+2*time.Second, "the sessions are registered again", func() bool {
		recs, err := b.lookup(context.Background(), "acme")
		return err == nil && slices.Equal(recordIDs(recs), []string{"s1", "s3"})
	})
	t.Logf("re-registered %s after Redis restarted (refresh every %s)", time.Since(restarted).Round(10*time.Millisecond), testRefresh)
	testwait.For(t, 2*time.Second, "the replica logs that the registry is back", func() bool {
		return strings.Contains(a.logs.String(), "session registry reachable again")
	})
}

func TestRedisRegistryBrokers(t *testing.T) {
	srv := redistest.Start(t)
	r := newTestReplica(t, srv.URL(), "a")
	rdb := newRedisClient(t, srv.URL())
	ctx := context.Background()
	broker, connector := NewToken(), NewToken()

	cfg := &config.Gateway{Registry: config.Registry{Type: config.RegistryRedis, URL: srv.URL()},
		Brokers: []config.BrokerEntry{{ID: "fromconfig"}}}
	if err := AddBroker(ctx, cfg, "newco", HashToken(broker), []string{HashToken(connector), HashToken("second")}); err != nil {
		t.Fatal(err)
	}
	if err := AddBroker(ctx, cfg, "newco", HashToken(broker), nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("adding newco twice: got %v, want already exists", err)
	}
	if err := AddBroker(ctx, cfg, "fromconfig", HashToken(broker), nil); err == nil {
		t.Error("adding a broker of the config: got no error")
	}
	rdb.HSet(ctx, BrokerKey("broken"), "token", "sha256:nothex")

	b, err := r.broker(ctx, "newco")
	if err != nil || b == nil {
		t.Fatalf("broker(newco): got %v, %v", b, err)
	}
	if !b.token.matches(broker) || len(b.connectors) != 2 || !b.connectors[0].matches(connector) || !b.connectors[1].matches("second") {
		t.Errorf("broker(newco): the hashes do not match the tokens")
	}
	for _, id := range []string{"nosuch", "broken", "NOT-A-NAME", "../x"} {
		if b, err := r.broker(ctx, id); b != nil || err != nil {
			t.Errorf("broker(%q): got %v, %v; want nil, nil", id, b, err)
		}
	}

	// Every replica reads them all, every refresh: a change, an addition
	// and a removal show within one.
	testwait.For(t, 2*time.Second, "newco read with the others", func() bool {
		return r.definedBrokers(ctx).get("newco") != nil
	})
	if d := r.definedBrokers(ctx); d.get("broken") != nil || d.get("fromconfig") != nil || !d.hasConnector(connector) || d.hasConnector(broker) {
		t.Errorf("brokers read: %v; want newco only, with its connector hashes", d.byID)
	}
	rotated := NewToken()
	rdb.HSet(ctx, BrokerKey("newco"), "connector_tokens", HashToken(rotated))
	AddBroker(ctx, cfg, "later", HashToken(broker), nil)
	testwait.For(t, 2*time.Second, "the change read", func() bool {
		d := r.definedBrokers(ctx)
		return d.hasConnector(rotated) && !d.hasConnector(connector) && d.get("later") != nil
	})
	rdb.Del(ctx, BrokerKey("later"))
	testwait.For(t, 2*time.Second, "the removal read", func() bool { return r.definedBrokers(ctx).get("later") == nil })

	// Redis down: a broker read before is still known; one never read
	// cannot be told, and says so with an error.
	srv.Stop()
	if b, err := r.broker(ctx, "newco"); b == nil || err != nil {
		t.Errorf("broker(newco) with Redis down: got %v, %v; want the definition read before", b, err)
	}
	failed := counterValue(r.metrics.registryErrors.WithLabelValues("brokers"))
	testwait.For(t, 5*time.Second, "a read of the brokers failed", func() bool {
		return counterValue(r.metrics.registryErrors.WithLabelValues("brokers")) > failed
	})
	if !r.definedBrokers(ctx).hasConnector(rotated) {
		t.Error("the brokers read before were dropped when Redis went down")
	}
	if b, err := r.broker(ctx, "unseen"); b != nil || err == nil {
		t.Errorf("broker(unseen) with Redis down: got %v, %v; want an error", b, err)
	}
}

// TestRedisBrokersNeverRead: a replica that has never read Redis cannot
// tell a broker of Redis from a stranger; it says so (nil), after
// waiting for its first read.
func TestRedisBrokersNeverRead(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	srv.Stop()
	r := newTestReplica(t, url, "a")
	start := time.Now()
	if d := r.definedBrokers(context.Background()); d != nil {
		t.Errorf("definedBrokers with Redis down since the start: got %v, want nil", d.byID)
	}
	t.Logf("first read failed after %s", time.Since(start).Round(time.Millisecond))
	if d := r.definedBrokers(context.Background()); d != nil {
		t.Errorf("definedBrokers later: got %v, want nil", d.byID)
	}
}

// TestRedisRegistryNoPasswordInLogs: the URL's password is never logged,
// also when Redis refuses or is gone.
func TestRedisRegistryNoPasswordInLogs(t *testing.T) {
	const password = "redis-pass-3f9a1c77"
	srv := redistest.Start(t, redistest.Password(password))
	a := newTestReplica(t, srv.URL(), "a")
	b := newTestReplica(t, srv.URL(), "b")
	a.publish(fakeSession("s1", "acme", "jira"))
	testwait.For(t, 2*time.Second, "b sees s1 (the password works)", func() bool { return len(b.fresh(t, "acme")) == 1 })

	wrong := newTestReplica(t, strings.Replace(srv.URL(), password, "wrong-"+password, 1), "wrong")
	wrong.publish(fakeSession("w1", "acme", "jira"))
	srv.Stop()
	b.forget("acme")
	b.lookup(context.Background(), "acme")
	testwait.For(t, 2*time.Second, "errors logged", func() bool {
		return strings.Contains(a.logs.String(), "session registry error") &&
			strings.Contains(wrong.logs.String(), "session registry error")
	})
	for name, l := range map[string]string{"a": a.logs.String(), "b": b.logs.String(), "wrong": wrong.logs.String()} {
		if strings.Contains(l, password) {
			t.Errorf("the log of %s contains the Redis password:\n%s", name, l)
		}
		if !strings.Contains(l, "REDACTED@") {
			t.Errorf("the log of %s does not name the (redacted) URL:\n%s", name, l)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestRedisBrokersSurviveUnknownIDs: asking for many broker ids that
// Redis does not have (a stranger's requests) does not make the registry
// forget the brokers it has read: with Redis down afterwards, they are
// still served from memory.
func TestRedisBrokersSurviveUnknownIDs(t *testing.T) {
	srv := redistest.Start(t)
	r := newTestReplica(t, srv.URL(), "a")
	ctx := context.Background()
	brokerTok := NewToken()
	cfg := &config.Gateway{Registry: config.Registry{Type: config.RegistryRedis, URL: srv.URL()}}
	if err := AddBroker(ctx, cfg, "newco", HashToken(brokerTok), []string{HashToken(NewToken())}); err != nil {
		t.Fatal(err)
	}
	if b, err := r.broker(ctx, "newco"); b == nil || err != nil {
		t.Fatalf("broker(newco): got %v, %v", b, err)
	}
	for i := range 10001 {
		if b, err := r.broker(ctx, fmt.Sprintf("nosuch-%d", i)); b != nil || err != nil {
			t.Fatalf("broker(nosuch-%d): got %v, %v; want nil, nil", i, b, err)
		}
	}
	srv.Stop()
	b, err := r.broker(ctx, "newco")
	if err != nil || b == nil || !b.token.matches(brokerTok) {
		t.Fatalf("broker(newco) with Redis down, after 10,001 unknown ids: got %v, %v; want the definition read before", b, err)
	}
}
