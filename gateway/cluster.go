package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
)

// Replicas (registry.type redis). A connector call that lands on a
// replica without a session of its broker is forwarded, over HTTP, to the
// internal listener (listen.internal) of a replica that has one, found in
// the shared registry. The internal listener serves only its own
// replica's sessions and never forwards: a call makes one hop at most,
// and no loop can form. Each forwarded request is signed with the cluster
// secret, its head, headers and body (clustersign.go); the internal
// listener refuses anything else with 401, and a replay with 401 too.

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
// client that forwards to other replicas, the nonces of the requests it
// took, and the routes to pass over.
type cluster struct {
	secret []byte
	id     string // this replica's random id, as its session records name it
	client *http.Transport
	nonces *nonceCache

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
		client: &http.Transport{
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

// release gives back the local session's in-flight slot.
func (rt *routed) release() {
	if rt.session != nil && !rt.released {
		rt.released = true
		rt.session.inflight.Add(-1)
	}
}

// logAttrs names the route in the request's log line.
func (rt *routed) logAttrs() []any {
	switch {
	case rt == nil:
		return []any{"session", ""}
	case rt.remote != nil:
		return []any{"session", rt.remote.Session, "forwarded_to", rt.remote.Advertise}
	case rt.session != nil:
		return []any{"session", rt.session.id}
	}
	return []any{"session", ""}
}

// routeError is a call that found no route; it becomes a broker error.
type routeError struct {
	code brokerhttp.Code
	msg  string
}

func (e *routeError) Error() string { return string(e.code) + ": " + e.msg }

// locate finds where a call goes: a local session of the broker serving
// the site (preferred), else one on another replica. When the broker has
// no session anywhere, it waits for one until rt.waitUntil: after a
// gateway restart, or while an agent moves between replicas, its session
// comes back within moments. It returns the broker error to answer when
// there is no route.
func (g *Gateway) locate(ctx context.Context, rt *routed) *routeError {
	waited := false
	for {
		changed := g.reg.changes()
		s, localOnline := g.reg.pick(rt.broker, rt.site)
		if s != nil {
			rt.session = s
			if waited {
				g.metrics.sessionWaits.WithLabelValues("found").Inc()
			}
			return nil
		}
		recs, err := g.shared.lookup(ctx, rt.broker)
		online := localOnline
		var candidates []sessionRecord
		for _, rec := range recs {
			if g.cluster.skipped(rec) {
				continue
			}
			online = true
			if rec.hasSite(rt.site) {
				candidates = append(candidates, rec)
			}
		}
		if len(candidates) > 0 {
			rec := candidates[rand.IntN(len(candidates))]
			rt.remote = &rec
			if waited {
				g.metrics.sessionWaits.WithLabelValues("found").Inc()
			}
			return nil
		}
		if online {
			return &routeError{brokerhttp.UnknownSite, fmt.Sprintf("the agent of broker %s has no site %q", rt.broker, rt.site)}
		}
		// A stopping gateway gets no new sessions, but in a cluster the
		// broker's agents may reappear at another replica.
		stopping := g.draining.Load() && g.cluster == nil
		if stopping || !time.Now().Before(rt.waitUntil) || ctx.Err() != nil {
			if waited {
				g.metrics.sessionWaits.WithLabelValues("timeout").Inc()
			}
			msg := fmt.Sprintf("no agent of broker %s is connected", rt.broker)
			if err != nil {
				msg = fmt.Sprintf("no agent of broker %s is connected to this replica, and the registry of the others is unreachable", rt.broker)
			}
			return &routeError{brokerhttp.BrokerOffline, msg}
		}
		waited = true
		wait := time.Until(rt.waitUntil)
		if g.cluster != nil {
			wait = min(wait, pollEvery)
		}
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}

// sessionTransport sends a request, addressed to the agent, along the
// route chosen for it.
type sessionTransport struct{ g *Gateway }

func (t sessionTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt := r.Context().Value(ctxKey{}).(*routed)
	return t.g.send(r, rt, "/b/"+rt.broker+"/"+rt.site+rt.path)
}

// errForwardBroken: a forwarded exchange failed after some of the request
// body had left, so it cannot be sent again.
var errForwardBroken = errors.New("the replica holding the session failed during the request")

// send sends req, addressed to the agent (http://agent/...), along rt:
// over the local session, or to the replica holding the session, at
// remotePath on its internal listener. When that replica cannot be
// reached or no longer has a session of the broker, and nothing of the
// request body has been read, send locates the session again (waiting
// until rt.waitUntil) and sends along the new route.
func (g *Gateway) send(req *http.Request, rt *routed, remotePath string) (*http.Response, error) {
	body := req.Body
	for {
		if rt.session != nil {
			req.Body = body
			return rt.session.transport.RoundTrip(req)
		}
		gb := newGuardedBody(body)
		resp, err := g.cluster.client.RoundTrip(g.cluster.remoteRequest(req, rt, remotePath, gb))
		switch {
		case err == nil && isRefused(resp):
			// The other replica has another secret, or a clock more than
			// clusterWindow away: a misconfiguration no retry mends.
			resp.Body.Close()
			g.metrics.forwarded.WithLabelValues("refused").Inc()
			g.rare.Log(g.log, slog.LevelWarn, "cluster-refused", "another replica refused this one's signature: check that every replica has the same cluster secret and a synchronised clock",
				"replica", rt.remote.Advertise, "request_id", rt.requestID)
			return nil, &routeError{brokerhttp.BrokerOffline, "the gateway replica holding the session refused to serve this one; retry"}
		case err == nil && !isNoSession(resp):
			g.metrics.forwarded.WithLabelValues("ok").Inc()
			return resp, nil
		case err == nil:
			resp.Body.Close()
			g.metrics.forwarded.WithLabelValues("no_session").Inc()
			g.cluster.skipRoute("session " + rt.remote.Session)
		case isDialError(err):
			g.metrics.forwarded.WithLabelValues("unreachable").Inc()
			g.cluster.skipRoute("replica " + rt.remote.Advertise)
			g.log.Debug("replica unreachable; looking for another route", "request_id", rt.requestID,
				"replica", rt.remote.Advertise, "err", err)
		default:
			g.metrics.forwarded.WithLabelValues("failed").Inc()
			return nil, err
		}
		g.shared.forget(rt.broker)
		if sealBody(gb) {
			return nil, errForwardBroken
		}
		rt.remote = nil
		if rerr := g.locate(req.Context(), rt); rerr != nil {
			return nil, rerr
		}
	}
}

// remoteRequest is req (addressed to the agent) readdressed to path on
// the internal listener of rt's replica, signed for it.
func (c *cluster) remoteRequest(req *http.Request, rt *routed, path string, body io.ReadCloser) *http.Request {
	out := req.Clone(req.Context())
	u, _ := url.Parse(rt.remote.Advertise) // checked when the record was read
	u = &url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: req.URL.RawQuery}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path
	} else {
		u.Path = path
	}
	out.URL, out.Host = u, u.Host
	out.Body, out.GetBody = body, nil
	h := out.Header
	// The receiving replica sets the site and operation itself.
	h.Del(brokerhttp.HeaderSite)
	h.Del(brokerhttp.HeaderOp)
	h.Set(brokerhttp.HeaderRequestID, rt.requestID)
	c.sign(out, rt.broker, rt.site, rt.requestID, rt.remote.Replica, req.ContentLength, time.Now())
	return out
}

// isNoSession recognises the internal listener's answer when its
// replica has no session of the broker any more. 421 with broker_offline
// comes from nowhere else: the agent strips Ox-Broker-* headers from
// Jira's answers and answers broker_offline with 502 itself.
func isNoSession(resp *http.Response) bool {
	return resp.StatusCode == http.StatusMisdirectedRequest &&
		resp.Header.Get(brokerhttp.HeaderError) == string(brokerhttp.BrokerOffline)
}

// isRefused recognises the internal listener's 401: the agent never
// answers unauthorized itself, and strips Ox-Broker-* headers from Jira's
// answers.
func isRefused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized &&
		resp.Header.Get(brokerhttp.HeaderError) == string(brokerhttp.Unauthorized)
}

// isDialError reports a failure to connect: nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// guardedBody lends a request body to one attempt at forwarding it. It
// does not close the body (the server does), and once sealed it reads
// nothing more, so that a next attempt can take the body over if this one
// never read from it.
type guardedBody struct {
	rc      io.ReadCloser
	mu      sync.Mutex // guards touched and sealed
	touched bool
	sealed  bool
}

func newGuardedBody(rc io.ReadCloser) io.ReadCloser {
	if rc == nil || rc == http.NoBody {
		return rc
	}
	return &guardedBody{rc: rc}
}

func (b *guardedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.sealed {
		b.mu.Unlock()
		return 0, errForwardBroken
	}
	b.touched = true
	b.mu.Unlock()
	return b.rc.Read(p)
}

func (b *guardedBody) Close() error { return nil }

// sealBody ends an attempt's use of what newGuardedBody returned and
// reports whether the attempt read from it. A nil or empty body can
// always be sent again.
func sealBody(rc io.ReadCloser) bool {
	b, ok := rc.(*guardedBody)
	if !ok {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sealed = true
	return b.touched
}

// misdirected turns the status of a broker error into 421, the internal
// listener's "no session here".
type misdirected struct{ http.ResponseWriter }

func (w misdirected) WriteHeader(int) { w.ResponseWriter.WriteHeader(http.StatusMisdirectedRequest) }

// internalHandler serves the internal listener: requests that other
// replicas forward, each signed with the cluster secret, for this
// replica's own sessions only. It never forwards, and never waits for a
// session: the replica that forwarded does that.
//
//	ANY /b/{broker}/{site}/{path...}                  as on the connector API
//	POST /v1/brokers/{broker}/sites/{site}/check      as on the connector API
func (g *Gateway) internalHandler() http.Handler {
	return brokerhttp.GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &brokerhttp.StatusRecorder{ResponseWriter: w}
		defer func() { g.metrics.internal.WithLabelValues(strconv.Itoa(rw.Status)).Inc() }()
		reqID := r.Header.Get(brokerhttp.HeaderRequestID)
		broker, site, path, check, ok := parseInternalTarget(r)
		signed, err := g.cluster.verify(r, broker, site, time.Now())
		if err != nil {
			g.rare.Log(g.log, slog.LevelWarn, "internal-refused", "internal request refused", "remote", r.RemoteAddr, "reason", err.Error(),
				"method", r.Method, "target", brokerhttp.Truncate(r.RequestURI, 128))
			switch {
			case errors.Is(err, errOlderReplica), errors.Is(err, errOtherReplica):
				// Signed with the secret, but not for this replica as it
				// is: "no session here", so that the replica that sent it
				// routes the call elsewhere.
				brokerhttp.WriteError(misdirected{rw}, brokerhttp.BrokerOffline,
					"this replica does not serve this request: "+err.Error(), reqID)
			case errors.Is(err, errReplayCacheFull):
				brokerhttp.WriteError(rw, brokerhttp.Overloaded, "too many forwarded requests; retry later", reqID)
			default:
				brokerhttp.WriteError(rw, brokerhttp.Unauthorized, "missing or wrong cluster signature", "")
			}
			return
		}
		r = signed
		if !ok || reqID == "" {
			brokerhttp.WriteError(rw, brokerhttp.BadRequest, "not a forwarded connector request", reqID)
			return
		}
		start := time.Now()
		s, _ := g.reg.pick(broker, site)
		if s == nil {
			brokerhttp.WriteError(misdirected{rw}, brokerhttp.BrokerOffline,
				fmt.Sprintf("this replica has no session of broker %s serving %q", broker, site), reqID)
			return
		}
		rt := &routed{session: s, broker: broker, site: site, path: path, requestID: reqID,
			publicBase: forwardedPublicBase(r)}
		defer rt.release()
		if r.Body != http.NoBody {
			// A body that fails its signature is the caller's error
			// (proxyError), and reaches the agent cut short.
			rt.body = &connectorBody{ReadCloser: r.Body}
			r.Body = rt.body
		}
		if check {
			g.runCheck(rw, r, rt)
		} else {
			g.proxy.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, rt)))
		}
		g.log.Info("forwarded request", "request_id", reqID, "broker", broker, "site", site, "check", check,
			"method", r.Method, "status", rw.Status, "bytes", rw.Bytes, "from", r.RemoteAddr,
			"duration", time.Since(start).Round(time.Microsecond).String(), "session", s.id)
	}), 0)
}

// parseInternalTarget reads broker, site and path (below the site) from
// a request on the internal listener; check marks the site check.
func parseInternalTarget(r *http.Request) (broker, site, path string, check, ok bool) {
	if !strings.HasPrefix(r.RequestURI, "/") {
		return "", "", "", false, false
	}
	p := r.URL.EscapedPath()
	if rest, isB := strings.CutPrefix(p, "/b/"); isB {
		broker, rest, _ = strings.Cut(rest, "/")
		site, path, hasPath := strings.Cut(rest, "/")
		ok = hasPath && namePattern.MatchString(broker) && namePattern.MatchString(site)
		return broker, site, "/" + path, false, ok
	}
	parts := strings.Split(p, "/") // "", v1, brokers, {broker}, sites, {site}, check
	if len(parts) == 7 && parts[1] == "v1" && parts[2] == "brokers" && parts[4] == "sites" && parts[6] == "check" {
		broker, site = parts[3], parts[5]
		ok = r.Method == http.MethodPost && namePattern.MatchString(broker) && namePattern.MatchString(site)
		return broker, site, "", true, ok
	}
	return "", "", "", false, false
}
