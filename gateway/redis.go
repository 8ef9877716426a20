package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/lograte"
	"github.com/oxsecurity/oxbroker/internal/ttlcache"
)

// The Redis key schema (docs/operations.md, "Running the gateway as a
// cluster"). Every replica writes only the records of its own sessions;
// a record lives as long as the replica keeps refreshing it, so the
// records of a replica that died without a word expire within the TTL.
//
//	oxbroker:session:<broker>:<session id>  string, a sessionRecord as JSON; TTL, rewritten every refresh
//	oxbroker:sessions:<broker>              set of the broker's session ids (the index); TTL, refreshed with them
//	oxbroker:broker:<broker>                hash {token, connector_tokens}: a broker outside the config; no TTL
const (
	keySession  = "oxbroker:session:"
	keySessions = "oxbroker:sessions:"
	keyBroker   = "oxbroker:broker:"
)

func sessionKey(broker, id string) string { return keySession + broker + ":" + id }
func indexKey(broker string) string       { return keySessions + broker }

// BrokerKey is the Redis key of a broker defined in Redis: a hash with
// the fields "token" (the sha256: hash of the broker token) and
// "connector_tokens" (sha256: hashes separated by commas).
func BrokerKey(id string) string { return keyBroker + id }

const (
	// DefaultRecordTTL is how long a session's record outlives the last
	// refresh of its replica, and DefaultRefresh how often a replica
	// rewrites its records: a record survives two missed refreshes.
	DefaultRecordTTL = 10 * time.Second
	DefaultRefresh   = 3 * time.Second

	// redisTimeout bounds one Redis operation on a request's path: with
	// Redis slow or gone, a request waits this long at most per lookup.
	redisTimeout = 500 * time.Millisecond
	// lookupFresh is how long a broker's session records are reused
	// before Redis is asked again (and how long a failed lookup is not
	// retried): it bounds the Redis load of a busy broker to a few
	// lookups a second per replica.
	lookupFresh = 250 * time.Millisecond
	// brokersReadTimeout bounds one read of every broker defined in
	// Redis (a SCAN and an HGETALL per broker, pipelined).
	brokersReadTimeout = 5 * time.Second
	// cacheEntries bounds the lookup cache; a full cache is emptied. Its
	// keys are brokers whose connector authenticated, so strangers cannot
	// fill it.
	cacheEntries = 10000
	// writeGap is the least time between two writes of changed records.
	writeGap = 100 * time.Millisecond
)

// redisRegistry is registry.type redis.
type redisRegistry struct {
	rdb       *redis.Client
	url       string // redacted, for logs
	log       *slog.Logger
	metrics   *metrics
	replica   string
	advertise string
	ttl       time.Duration
	every     time.Duration
	kick      chan struct{} // wakes run to write pending changes at once

	mu      sync.Mutex               // guards mine, pending, left and down
	mine    map[string]*agentSession // the local sessions, by id, whose records run keeps alive
	pending map[string]pendingOp     // changes not yet written, by session id
	left    bool                     // run has removed the records: publish nothing more
	down    bool                     // the last write failed

	lookups *ttlcache.Cache[[]sessionRecord] // by broker

	// The brokers defined in Redis, as last read (nil before the first
	// read succeeds): run reads them all every refresh, and the connector
	// API judges tokens against them only, so that a stranger's call
	// never costs a Redis round trip or an entry in memory. Redis going
	// away leaves them as they were.
	defined   atomic.Pointer[brokerSet]
	definedMu sync.Mutex      // serialises changes of defined
	firstRead chan struct{}   // closed once the first read has ended, however
	readOnce  sync.Once       // closes firstRead
	configIDs map[string]bool // the brokers of the config, which win over Redis's

	// errLog bounds the warnings Redis drives: one per 10 s and key.
	errLog *lograte.Limiter
}

type pendingOp struct {
	broker string
	del    bool
}

// quietRedis turns off go-redis's own logging. It has one logger for the
// whole process, which writes to stderr past our handler and unthrottled
// (a line per failed dial while Redis is down); its errors reach us as
// return values anyway, and the registry logs those, rate-limited.
var quietRedis = sync.OnceFunc(func() { redis.SetLogger(&logging.VoidLogger{}) })

// redisOptions parses registry.url into client options that every Redis
// the gateway supports understands. Its error never quotes the URL, which
// holds the password.
func redisOptions(url string) (*redis.Options, error) {
	quietRedis()
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("registry.url: not a valid redis:// or rediss:// URL")
	}
	o.DisableIdentity = true // CLIENT SETINFO is unknown before Redis 7.2
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o, nil
}

// newRedisRegistry connects lazily: nothing is dialled until the first
// operation, so a gateway starts (and serves its local sessions) with
// Redis down.
func newRedisRegistry(cfg *config.Gateway, replica string, opts Options, log *slog.Logger, m *metrics) (*redisRegistry, error) {
	o, err := redisOptions(cfg.Registry.URL)
	if err != nil {
		return nil, err
	}
	// Short timeouts and one retry: a request never waits long for Redis.
	o.DialTimeout = redisTimeout
	o.ReadTimeout = redisTimeout
	o.WriteTimeout = redisTimeout
	o.PoolTimeout = redisTimeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = 1
	o.DialerRetries = 1
	r := &redisRegistry{
		rdb:       redis.NewClient(o),
		url:       redactURL(cfg.Registry.URL),
		log:       log,
		metrics:   m,
		replica:   replica,
		advertise: advertiseBase(cfg.Registry.Advertise),
		ttl:       opts.RegistryTTL,
		every:     opts.RegistryRefresh,
		kick:      make(chan struct{}, 1),
		mine:      make(map[string]*agentSession),
		pending:   make(map[string]pendingOp),
		lookups:   ttlcache.New[[]sessionRecord](cacheEntries),
		errLog:    lograte.New(1, logEvery, 4),
		firstRead: make(chan struct{}),
		configIDs: make(map[string]bool),
	}
	for _, b := range cfg.Brokers {
		r.configIDs[b.ID] = true
	}
	return r, nil
}

func (r *redisRegistry) publish(s *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left {
		return
	}
	r.mine[s.id] = s
	r.pending[s.id] = pendingOp{broker: s.brokerID}
	r.wake()
}

func (r *redisRegistry) withdraw(s *agentSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left || r.mine[s.id] != s {
		return
	}
	delete(r.mine, s.id)
	r.pending[s.id] = pendingOp{broker: s.brokerID, del: true}
	r.wake()
}

// wake asks run to write the pending changes; callers hold r.mu.
func (r *redisRegistry) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *redisRegistry) run(ctx context.Context) {
	r.log.Info("session registry", "type", "redis", "url", r.url, "advertise", r.advertise, "replica", r.replica)
	var readers sync.WaitGroup
	defer readers.Wait()
	readers.Go(func() { r.readBrokersEvery(ctx) })
	readers.Go(func() { r.errLog.Run(ctx) })
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.leave()
			return
		case <-r.kick:
			r.write(false)
			// Changes that come meanwhile wait for the next write, so that
			// a flood of sites messages or a reconnect loop costs Redis
			// one pipeline per writeGap, not one per change.
			select {
			case <-ctx.Done():
				r.leave()
				return
			case <-time.After(writeGap):
			}
		case <-t.C:
			// Every record, not only the changed ones: this refreshes the
			// TTLs and puts the records back after Redis lost them (a
			// restart without persistence).
			r.write(true)
		}
	}
}

// write sends the pending changes, and with all every record, in one
// pipeline. Failed deletions stay pending; failed writes are redone by the
// next refresh.
func (r *redisRegistry) write(all bool) {
	r.mu.Lock()
	ops := r.pending
	r.pending = make(map[string]pendingOp)
	var puts []*agentSession
	for id, op := range ops {
		if !op.del && !all && r.mine[id] != nil {
			puts = append(puts, r.mine[id])
		}
	}
	if all {
		for _, s := range r.mine {
			puts = append(puts, s)
		}
	}
	r.mu.Unlock()
	if len(ops) == 0 && len(puts) == 0 {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*redisTimeout)
	defer cancel()
	pipe := r.rdb.Pipeline()
	for id, op := range ops {
		if op.del {
			pipe.Del(ctx, sessionKey(op.broker, id))
			pipe.SRem(ctx, indexKey(op.broker), id)
		}
	}
	for _, s := range puts {
		b, _ := json.Marshal(r.record(s))
		pipe.Set(ctx, sessionKey(s.brokerID, s.id), b, r.ttl)
		pipe.SAdd(ctx, indexKey(s.brokerID), s.id)
		// Any replica's refresh extends the index past its own records.
		pipe.PExpire(ctx, indexKey(s.brokerID), r.ttl)
	}
	_, err := pipe.Exec(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		for id, op := range ops {
			if _, newer := r.pending[id]; op.del && !newer {
				r.pending[id] = op
			}
		}
		r.down = true
		r.failed("publish", err)
		return
	}
	if r.down {
		r.down = false
		r.log.Info("session registry reachable again; sessions registered", "url", r.url, "sessions", len(r.mine))
	}
}

// leave removes every record of this replica, so that the others stop
// forwarding to it, and makes publish and withdraw no-ops from then on.
func (r *redisRegistry) leave() {
	r.mu.Lock()
	r.left = true
	ops := r.pending
	for id, s := range r.mine {
		ops[id] = pendingOp{broker: s.brokerID, del: true}
	}
	r.mine, r.pending = map[string]*agentSession{}, map[string]pendingOp{}
	r.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*redisTimeout)
	defer cancel()
	pipe := r.rdb.Pipeline()
	for id, op := range ops {
		pipe.Del(ctx, sessionKey(op.broker, id))
		pipe.SRem(ctx, indexKey(op.broker), id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.failed("withdraw", err)
		r.log.Warn("could not remove this replica's session records; they expire on their own", "ttl", r.ttl.String())
		return
	}
	r.log.Info("session records removed from the registry", "sessions", len(ops))
}

func (r *redisRegistry) record(s *agentSession) sessionRecord {
	rec := sessionRecord{
		Broker: s.brokerID, Session: s.id, Replica: r.replica, Advertise: r.advertise,
		Sites: []string{}, Since: s.since.UTC(),
		AgentID: clip.String(s.hello.AgentID, 64), Version: clip.String(s.hello.AgentVersion, 64),
		Hostname: clip.String(s.hello.Hostname, 64),
	}
	if s.sess != nil {
		rec.Transport = s.sess.Transport()
	}
	for _, si := range s.siteList() {
		rec.Sites = append(rec.Sites, si.Name)
	}
	return rec
}

// lookup returns the records of broker's sessions on the other replicas.
// Concurrent lookups of one broker share one Redis round trip, and the
// answer (or the error) is reused for lookupFresh.
func (r *redisRegistry) lookup(ctx context.Context, broker string) ([]sessionRecord, error) {
	return r.lookups.Get(broker, func([]sessionRecord) ([]sessionRecord, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
		defer cancel()
		recs, err := r.fetchSessions(ctx, broker)
		if err != nil {
			r.failed("lookup", err)
		}
		return recs, lookupFresh, err
	})
}

func (r *redisRegistry) forget(broker string) { r.lookups.Forget(broker) }

func (r *redisRegistry) fetchSessions(ctx context.Context, broker string) ([]sessionRecord, error) {
	ids, err := r.rdb.SMembers(ctx, indexKey(broker)).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = sessionKey(broker, id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	var recs []sessionRecord
	var expired []any
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			// The record expired (its replica is gone); the index still
			// names it until someone cleans up.
			expired = append(expired, ids[i])
			continue
		}
		var rec sessionRecord
		if json.Unmarshal([]byte(s), &rec) != nil || rec.Broker != broker || rec.Advertise == "" {
			continue
		}
		if rec.Replica == r.replica || rec.Advertise == r.advertise {
			// Ours (local sessions are known better locally), or left by
			// an earlier process at this address.
			continue
		}
		recs = append(recs, rec)
	}
	if len(expired) > 0 {
		r.rdb.SRem(ctx, indexKey(broker), expired...) // best effort
	}
	return recs, nil
}

// failed counts and logs (rate-limited) a Redis error. Errors of go-redis
// name the address, never the password.
func (r *redisRegistry) failed(op string, err error) {
	r.metrics.registryErrors.WithLabelValues(op).Inc()
	r.errLog.Log(r.log, slog.LevelWarn, "registry", "session registry error", "op", op, "url", r.url, "err", err)
}

func (r *redisRegistry) close() { r.rdb.Close() }

// redactURL hides the password of a URL, for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}

// advertiseBase is the scheme and host of registry.advertise: the
// internal listener serves its own paths from the root.
func advertiseBase(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Scheme + "://" + u.Host
}
