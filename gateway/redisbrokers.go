package gateway

// The broker definitions of registry.type redis: oxbroker:broker:<id>
// hashes that `oxbroker-gateway broker add` writes and every replica reads
// whole (redis.go holds the session records).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

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
				r.errLog.Log(r.log, slog.LevelWarn, "brokers", "a broker in the registry is malformed; ignored", "broker", clip.String(id, 64), "key", clip.String(k, 128), "err", err)
				continue
			case err != nil:
				return nil, err
			case len(fields) == 0, r.configIDs[id]: // deleted since the SCAN; the config's
				continue
			case !brokerhttp.ValidName(id):
				r.errLog.Log(r.log, slog.LevelWarn, "brokers", "a broker in the registry has an invalid id; ignored", "key", clip.String(k, 128))
				continue
			}
			b, err := parseBrokerFields(id, fields)
			if err != nil {
				r.errLog.Log(r.log, slog.LevelWarn, "brokers", "a broker in the registry is malformed; ignored", "broker", id, "key", k, "err", err)
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
	if !brokerhttp.ValidName(id) || r.configIDs[id] {
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
		r.errLog.Log(r.log, slog.LevelWarn, "brokers", "a broker in the registry is malformed; ignored", "broker", id, "key", BrokerKey(id), "err", err)
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

// AddBroker defines a broker in the Redis registry of cfg, for replicas
// to accept without a new config: tokenHash authenticates its agents,
// connectorHashes OX's connector. It refuses a broker that the config or
// Redis already has.
func AddBroker(ctx context.Context, cfg *config.Gateway, id, tokenHash string, connectorHashes []string) error {
	if cfg.Registry.Type != config.RegistryRedis {
		return errors.New("registry.type is not redis: brokers come from the config file only")
	}
	if !brokerhttp.ValidName(id) {
		return fmt.Errorf("broker id %q: must match %s", clip.String(id, 64), brokerhttp.NamePattern)
	}
	for _, b := range cfg.Brokers {
		if b.ID == id {
			return fmt.Errorf("broker %s is defined in the config file", id)
		}
	}
	o, err := redisOptions(cfg.Registry.URL)
	if err != nil {
		return err
	}
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
