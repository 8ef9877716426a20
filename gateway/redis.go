package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oxsecurity/oxbroker/config"
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

	lookups cache[[]sessionRecord] // by broker

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

	errLog logLimiter
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

// newRedisRegistry connects lazily: nothing is dialled until the first
// operation, so a gateway starts (and serves its local sessions) with
// Redis down.
func newRedisRegistry(cfg *config.Gateway, replica string, opts Options, log *slog.Logger, m *metrics) (*redisRegistry, error) {
	quietRedis()
	o, err := redis.ParseURL(cfg.Registry.URL)
	if err != nil {
		// The cause may quote the URL, password and all.
		return nil, errors.New("registry.url: not a valid redis:// or rediss:// URL")
	}
	// Short timeouts and one retry: a request never waits long for Redis.
	o.DialTimeout = redisTimeout
	o.ReadTimeout = redisTimeout
	o.WriteTimeout = redisTimeout
	o.PoolTimeout = redisTimeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = 1
	o.DialerRetries = 1
	o.DisableIdentity = true // CLIENT SETINFO is unknown before Redis 7.2
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
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
		lookups:   newCache[[]sessionRecord](),
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
		AgentID: truncate(s.hello.AgentID, 64), Version: truncate(s.hello.AgentVersion, 64),
		Hostname: truncate(s.hello.Hostname, 64),
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
	return r.lookups.get(broker, func([]sessionRecord) ([]sessionRecord, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
		defer cancel()
		recs, err := r.fetchSessions(ctx, broker)
		if err != nil {
			r.failed("lookup", err)
		}
		return recs, lookupFresh, err
	})
}

func (r *redisRegistry) forget(broker string) { r.lookups.forget(broker) }

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

// brokerSet is the brokers defined in Redis as one replica last read
// them; it never changes once made.
type brokerSet struct {
	byID       map[string]*brokerAuth
	connectors map[tokenHash]bool // every connector hash of byID
	// added are the brokers that a hello read before the next read of
	// them all, and when: a read that began before keeps them.
	added map[string]time.Time
}

func newBrokerSet(byID map[string]*brokerAuth, added map[string]time.Time) *brokerSet {
	s := &brokerSet{byID: byID, connectors: make(map[tokenHash]bool), added: added}
	for _, b := range byID {
		for _, h := range b.connectors {
			s.connectors[h] = true
		}
	}
	return s
}

// get returns broker id, or nil; s may be nil.
func (s *brokerSet) get(id string) *brokerAuth {
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// hasConnector reports whether token is a connector token of some broker
// of s; s may be nil. It looks the token's SHA-256 up in a map: the time
// that takes may depend on the hash, which tells nothing of the token.
func (s *brokerSet) hasConnector(token string) bool {
	if s == nil {
		return false
	}
	return s.connectors[sha256.Sum256([]byte(token))]
}

// readBrokersEvery reads the brokers defined in Redis now and every
// refresh until ctx ends.
func (r *redisRegistry) readBrokersEvery(ctx context.Context) {
	defer r.readOnce.Do(func() { close(r.firstRead) })
	r.readBrokers(ctx)
	r.readOnce.Do(func() { close(r.firstRead) })
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.readBrokers(ctx)
		}
	}
}

// readBrokers replaces the brokers of Redis known here with what Redis
// holds now; when Redis cannot be read, they stay as they were.
func (r *redisRegistry) readBrokers(ctx context.Context) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, brokersReadTimeout)
	defer cancel()
	byID, err := r.fetchBrokers(ctx)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.failed("brokers", err)
		}
		return
	}
	r.definedMu.Lock()
	defer r.definedMu.Unlock()
	// A broker that a hello read while this read was under way is kept
	// as the hello read it, present or not in this read; the next read
	// settles it.
	added := make(map[string]time.Time)
	if old := r.defined.Load(); old != nil {
		for id, at := range old.added {
			if at.After(started) {
				byID[id], added[id] = old.byID[id], at
			}
		}
	}
	r.defined.Store(newBrokerSet(byID, added))
}

// fetchBrokers reads every broker hash of Redis. Malformed ones are left
// out, with a warning.
func (r *redisRegistry) fetchBrokers(ctx context.Context) (map[string]*brokerAuth, error) {
	byID := make(map[string]*brokerAuth)
	var cursor uint64
	for {
		keys, next, err := r.rdb.Scan(ctx, cursor, keyBroker+"*", 1000).Result()
		if err != nil {
			return nil, err
		}
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		if len(keys) > 0 {
			pipe.Exec(ctx) // each command's error is looked at below
		}
		for i, k := range keys {
			id := strings.TrimPrefix(k, keyBroker)
			fields, err := cmds[i].Result()
			var rerr redis.Error
			switch {
			case errors.As(err, &rerr): // WRONGTYPE: a key that is no hash
				r.errLog.warn(r.log, "a broker in the registry is malformed; ignored", "broker", truncate(id, 64), "key", truncate(k, 128), "err", err)
				continue
			case err != nil:
				return nil, err
			case len(fields) == 0, r.configIDs[id]: // deleted since the SCAN; the config's
				continue
			case !namePattern.MatchString(id):
				r.errLog.warn(r.log, "a broker in the registry has an invalid id; ignored", "key", truncate(k, 128))
				continue
			}
			b, err := parseBrokerFields(id, fields)
			if err != nil {
				r.errLog.warn(r.log, "a broker in the registry is malformed; ignored", "broker", id, "key", k, "err", err)
				continue
			}
			byID[id] = b
		}
		if cursor = next; cursor == 0 {
			return byID, nil
		}
	}
}

// definedBrokers returns the brokers of Redis as last read, or nil when
// Redis has never been read; at start, it waits (within ctx) for the
// first read to end. It never asks Redis itself.
func (r *redisRegistry) definedBrokers(ctx context.Context) *brokerSet {
	select {
	case <-r.firstRead:
	case <-ctx.Done():
	}
	return r.defined.Load()
}

// broker returns a broker that the config does not define, for an
// agent's hello: from the brokers last read or, when they do not have
// it, from Redis at once, so that the agent of a broker added a moment
// ago is accepted (failed hellos are limited per address: auth.go). An
// error means that Redis could not say.
func (r *redisRegistry) broker(ctx context.Context, id string) (*brokerAuth, error) {
	if !namePattern.MatchString(id) || r.configIDs[id] {
		return nil, nil
	}
	if b := r.defined.Load().get(id); b != nil {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	fields, err := r.rdb.HGetAll(ctx, BrokerKey(id)).Result()
	if err != nil {
		r.failed("broker", err)
		return nil, err
	}
	if len(fields) == 0 {
		return nil, nil
	}
	b, err := parseBrokerFields(id, fields)
	if err != nil {
		r.errLog.warn(r.log, "a broker in the registry is malformed; ignored", "broker", id, "key", BrokerKey(id), "err", err)
		return nil, nil
	}
	r.definedMu.Lock()
	defer r.definedMu.Unlock()
	old := r.defined.Load()
	byID, added := map[string]*brokerAuth{id: b}, map[string]time.Time{id: time.Now()}
	if old != nil {
		for k, v := range old.byID {
			if k != id {
				byID[k] = v
			}
		}
		for k, v := range old.added {
			if k != id {
				added[k] = v
			}
		}
	}
	r.defined.Store(newBrokerSet(byID, added))
	return b, nil
}

// knows reports whether broker id was found in Redis when last read,
// without reading it again.
func (r *redisRegistry) knows(id string) bool { return r.defined.Load().get(id) != nil }

// parseBrokerFields decodes the hash of a broker defined in Redis.
func parseBrokerFields(id string, fields map[string]string) (*brokerAuth, error) {
	b := &brokerAuth{id: id}
	var ok bool
	if b.token, ok = parseTokenHash(fields["token"]); !ok {
		return nil, errors.New(`field "token": not a sha256:<hex> hash`)
	}
	for c := range strings.SplitSeq(fields["connector_tokens"], ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		h, ok := parseTokenHash(c)
		if !ok {
			return nil, errors.New(`field "connector_tokens": not a comma-separated list of sha256:<hex> hashes`)
		}
		b.connectors = append(b.connectors, h)
	}
	return b, nil
}

// failed counts and logs (rate-limited) a Redis error. Errors of go-redis
// name the address, never the password.
func (r *redisRegistry) failed(op string, err error) {
	r.metrics.registryErrors.WithLabelValues(op).Inc()
	r.errLog.warn(r.log, "session registry error", "op", op, "url", r.url, "err", err)
}

func (r *redisRegistry) close() { r.rdb.Close() }

// AddBroker defines a broker in the Redis registry of cfg, for replicas
// to accept without a new config: tokenHash authenticates its agents,
// connectorHashes OX's connector. It refuses a broker that the config or
// Redis already has.
func AddBroker(ctx context.Context, cfg *config.Gateway, id, tokenHash string, connectorHashes []string) error {
	if cfg.Registry.Type != config.RegistryRedis {
		return errors.New("registry.type is not redis: brokers come from the config file only")
	}
	if !namePattern.MatchString(id) {
		return fmt.Errorf("broker id %q: must match [a-z0-9][a-z0-9-]{0,62}", truncate(id, 64))
	}
	for _, b := range cfg.Brokers {
		if b.ID == id {
			return fmt.Errorf("broker %s is defined in the config file", id)
		}
	}
	o, err := redis.ParseURL(cfg.Registry.URL)
	if err != nil {
		return errors.New("registry.url: not a valid redis:// or rediss:// URL")
	}
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	quietRedis()
	rdb := redis.NewClient(o)
	defer rdb.Close()
	key := BrokerKey(id)
	// Both fields in one HSET, in a transaction that fails if the key
	// appears meanwhile: replicas reading the brokers see all of the new
	// one or nothing.
	exists := false
	err = rdb.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil || n > 0 {
			exists = n > 0
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, "token", tokenHash, "connector_tokens", strings.Join(connectorHashes, ","))
			return nil
		})
		return err
	}, key)
	switch {
	case errors.Is(err, redis.TxFailedErr):
		exists = true
	case err != nil:
		return fmt.Errorf("redis at %s: %w", redactURL(cfg.Registry.URL), err)
	}
	if exists {
		return fmt.Errorf("broker %s already exists in redis (%s)", id, key)
	}
	return nil
}

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

// cache remembers one value per key for as long as its fetch says;
// concurrent gets of one key share one fetch.
type cache[V any] struct {
	mu      sync.Mutex // guards entries
	entries map[string]*cacheEntry[V]
}

type cacheEntry[V any] struct {
	mu   sync.Mutex // guards the rest; held during a fetch
	next time.Time  // fetch again from then on
	val  V
	err  error
}

func newCache[V any]() cache[V] { return cache[V]{entries: make(map[string]*cacheEntry[V])} }

// get returns the value of key. fetch gets the value it returned last
// time, and says how long its answer (an error too) is good for.
func (c *cache[V]) get(key string, fetch func(prev V) (V, time.Duration, error)) (V, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= cacheEntries {
			clear(c.entries)
		}
		e = &cacheEntry[V]{}
		c.entries[key] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Now().Before(e.next) {
		return e.val, e.err
	}
	var d time.Duration
	e.val, d, e.err = fetch(e.val)
	e.next = time.Now().Add(d)
	return e.val, e.err
}

// forget makes the next get of key fetch.
func (c *cache[V]) forget(key string) {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.next = time.Time{}
		e.mu.Unlock()
	}
}

// logLimiter logs at most one warning every logEvery, and says how many
// it held back.
type logLimiter struct {
	mu         sync.Mutex // guards last and suppressed
	last       time.Time
	suppressed int
}

const logEvery = 10 * time.Second

func (l *logLimiter) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	if time.Since(l.last) < logEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = time.Now(), 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
