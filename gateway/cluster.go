package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/config"
)

// Replicas (registry.type redis). A connector call that lands on a
// replica without a session of its broker is forwarded, over HTTP, to the
// internal listener (listen.internal) of a replica that has one, found in
// the shared registry. The internal listener serves only its own
// replica's sessions and never forwards: a call makes one hop at most,
// and no loop can form. Each forwarded request is signed with the cluster
// secret, its head, headers and body (clustersign.go); the internal
// listener refuses anything else with 401, and a replay with 401 too
// (clusterverify.go).
//
// Gateway.locate (route.go) finds a call's route, Gateway.send
// (clusterforward.go) carries it to the replica holding the session, and
// Gateway.internalHandler (clusterinternal.go) serves the calls other
// replicas forward.

const (
	// clusterWindow is how far a forwarded request's timestamp may be
	// from the receiver's clock.
	clusterWindow = 30 * time.Second
	// minSecretLen is the shortest cluster secret accepted, in bytes.
	minSecretLen = 32
	// skipFor is how long a replica that could not be reached, or a
	// session record that turned out stale, is passed over.
	skipFor = 2 * time.Second
	// pollEvery is how often a request waiting for a session asks the
	// shared registry again (answers are cached for lookupFresh).
	pollEvery = 100 * time.Millisecond
	// forwardDialTimeout bounds the connection to another replica: a
	// replica that does not answer is passed over quickly.
	forwardDialTimeout = time.Second
	// DefaultSessionWait is how long a call to a known broker without a
	// session anywhere waits for one (its agents are reconnecting).
	DefaultSessionWait = 3 * time.Second
)

// cluster is this replica's part in forwarding: the secret, its id, the
// transport that forwards to other replicas, the nonces of the requests it
// took, and the routes to pass over.
type cluster struct {
	secret    []byte
	id        string // this replica's random id, as its session records name it
	transport *http.Transport
	nonces    *nonceCache

	mu   sync.Mutex           // guards skip
	skip map[string]time.Time // "replica <advertise>" or "session <id>" -> until
}

func newCluster(secretFile string, log *slog.Logger) (*cluster, error) {
	b, advice, err := config.ReadSecretFile(secretFile, config.GatewayGroup)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	if advice != "" {
		log.Warn("cluster.secret_file: "+advice, "key", "cluster.secret_file")
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("cluster.secret_file: the secret must be at least %d characters (make one with: openssl rand -hex 32)", minSecretLen)
	}
	return &cluster{
		secret: secret,
		id:     newID(),
		nonces: newNonceCache(replayEntries),
		transport: &http.Transport{
			// Never through a proxy from the environment: replicas talk
			// directly, on the private network.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: forwardDialTimeout}).DialContext,
			MaxIdleConnsPerHost: 64,
			// Shorter than the internal listener's idle timeout, so that
			// this side closes an idle connection before the other does.
			IdleConnTimeout:    30 * time.Second,
			DisableCompression: true,
			WriteBufferSize:    32 << 10,
			ReadBufferSize:     32 << 10,
		},
		skip: make(map[string]time.Time),
	}, nil
}

func (c *cluster) skipRoute(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for k, until := range c.skip {
		if now.After(until) {
			delete(c.skip, k)
		}
	}
	c.skip[key] = now.Add(skipFor)
}

// skipped reports whether rec is to be passed over for now.
func (c *cluster) skipped(rec sessionRecord) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	return now.Before(c.skip["replica "+rec.Advertise]) || now.Before(c.skip["session "+rec.Session])
}
