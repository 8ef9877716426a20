package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/copybuf"
)

// The connector API:
//
//	ANY /b/{broker}/{site}/{path...}   proxied to {path} on the site's Jira
//	GET /v1/brokers/{broker}           sessions and sites of a broker
//	POST /v1/brokers/{broker}/sites/{site}/check   the agent's checks of a site (check.go)
//
// /b/ paths are routed by hand, not by http.ServeMux, because ServeMux
// cleans paths and redirects: the raw path must reach the agent unchanged
// so that the agent, which holds the credentials, judges it.
//
// brokerhttp.GuardBodies delivers refusals made before the body (401, 404,
// the agent's 403 and 413) at once and then closes the connection, and
// cuts bodies that stall.
func (g *Gateway) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/brokers/{broker}", g.serveBroker)
	mux.HandleFunc("POST /v1/brokers/{broker}/sites/{site}/check", g.serveCheck)
	return brokerhttp.GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := checkFraming(w, r); msg != "" {
			brokerhttp.WriteError(w, brokerhttp.BadRequest, msg, "")
			return
		}
		if !strings.HasPrefix(r.RequestURI, "/") {
			// Absolute-form target: a proxy request, never ours.
			brokerhttp.WriteError(w, brokerhttp.BadRequest, "the request target must be a path (origin-form)", "")
			return
		}
		if strings.HasPrefix(r.URL.EscapedPath(), "/b/") {
			g.serveConnector(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), 0)
}

type ctxKey struct{}

// routed is what the reverse proxy needs to know about one request, and
// where it goes: a local session, or a session of another replica
// (cluster.go).
type routed struct {
	session   *agentSession  // local; its in-flight count raised until release
	remote    *sessionRecord // on another replica
	broker    string
	site      string
	path      string // escaped path below /b/{broker}/{site}
	requestID string
	// body is the connector's request body, nil without one: why reading
	// it failed makes a broken body the connector's error (400), not the
	// tunnel's (502).
	body      *brokerhttp.TrackedBody
	waitUntil time.Time // until when the request may wait for a session
	released  bool

	// publicBase is the URL under which the connector reached the API
	// (public.go), sent to the agent in Ox-Broker-Public-Base; "" sends
	// none.
	publicBase string
}

// proxyCall sends a routed call through the reverse proxy, its answer's
// flushes delayed (brokerhttp.DelayedFlush): the agent's chunked answers
// would otherwise cost a write per chunk.
func (g *Gateway) proxyCall(rw *brokerhttp.StatusRecorder, r *http.Request) {
	df := brokerhttp.NewDelayedFlush(rw.ResponseWriter, brokerhttp.FlushDelay)
	defer df.Stop()
	rw.ResponseWriter = df
	g.proxy.ServeHTTP(rw, r)
}

func (g *Gateway) serveConnector(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newID()
	rw := &brokerhttp.StatusRecorder{ResponseWriter: w}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/b/")
	broker, rest, _ := strings.Cut(rest, "/")
	site, path, hasPath := strings.Cut(rest, "/")
	var rt *routed
	defer func() {
		// Only known brokers (of the config, or read from Redis) become
		// label values: the path is the caller's, and labels must not
		// grow with what strangers send.
		label := "unknown"
		if g.known(broker) {
			label = broker
		}
		g.metrics.requests.WithLabelValues(label, strconv.Itoa(rw.Status)).Inc()
		if label != "unknown" {
			g.board.observeCall(broker, rw.Status, rw.Header().Get(brokerhttp.HeaderError), rt != nil && rt.remote != nil)
		}
		g.metrics.duration.Observe(time.Since(start).Seconds())
		// One line per call: attributes on the stack, no boxing.
		if ctx := r.Context(); g.log.Enabled(ctx, slog.LevelInfo) {
			var buf [10]slog.Attr
			attrs := append(buf[:0], slog.String("request_id", reqID), slog.String("broker", clip.String(broker, 64)),
				slog.String("site", clip.String(site, 64)), slog.String("method", r.Method), slog.Int("status", rw.Status),
				slog.Int64("bytes", rw.Bytes), slog.String("duration", time.Since(start).Round(time.Microsecond).String()))
			g.log.LogAttrs(ctx, slog.LevelInfo, "request", rt.appendLogAttrs(attrs)...)
		}
	}()

	if !brokerhttp.ValidName(broker) || !brokerhttp.ValidName(site) || !hasPath {
		brokerhttp.WriteError(rw, brokerhttp.BadRequest, "the path must be /b/{broker}/{site}/{jira path}", reqID)
		return
	}
	if rt = g.route(rw, r, broker, site, reqID); rt == nil {
		return
	}
	defer rt.release()
	rt.path = "/" + path
	rt.publicBase = g.public.of(r)
	if r.Body != nil && r.Body != http.NoBody {
		rt.body = &brokerhttp.TrackedBody{ReadCloser: r.Body}
		r.Body = rt.body
		if r.ContentLength < 0 {
			// Chunked: read the first chunk before the request leaves,
			// so that a body that is broken from its first byte is
			// refused here and never reaches Jira. A chunk broken later
			// reaches the agent as a cut stream, and the agent aborts
			// its request to Jira.
			br := bufio.NewReader(rt.body)
			if _, err := br.Peek(1); err != nil && err != io.EOF {
				msg := "the request body is malformed: "
				if _, stalled := errors.AsType[*brokerhttp.StalledError](err); stalled {
					msg = "reading the request body failed: "
				}
				brokerhttp.WriteError(rw, brokerhttp.BadRequest, msg+err.Error(), reqID)
				return
			}
			r.Body = struct {
				io.Reader
				io.Closer
			}{br, rt.body}
		}
	}
	g.proxyCall(rw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, rt)))
}

// route authorizes a connector call for broker and site and finds the
// route to carry it (locate): a local session, with its in-flight count
// raised (the caller calls release), or another replica's. It answers the
// call itself and returns nil when it cannot.
func (g *Gateway) route(w http.ResponseWriter, r *http.Request, broker, site, reqID string) *routed {
	if code, msg := g.authorize(w, r, broker); code != "" {
		brokerhttp.WriteError(w, code, msg, reqID)
		return nil
	}
	rt := &routed{broker: broker, site: site, requestID: reqID, waitUntil: time.Now().Add(g.opts.SessionWait)}
	if rerr := g.locate(r.Context(), rt); rerr != nil {
		brokerhttp.WriteError(w, rerr.code, rerr.msg, reqID)
		return nil
	}
	return rt
}

// authorize checks the connector token. A token that is valid for no
// broker gets 401 whatever the broker, so that callers without a token
// cannot learn which brokers exist. Failures are limited per source
// (failureLimiter): a source over its budget gets 429 with Retry-After,
// its token unjudged. The scope of a known broker is its own, so that one
// customer's stale token at OX's connector does not lock out the others.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, broker string) (brokerhttp.Code, string) {
	scope := ""
	if g.known(broker) {
		scope = broker
	}
	if wait, ok := g.failures.admit(r.RemoteAddr, scope); !ok {
		g.metrics.authLimited.WithLabelValues("api").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(wait)))
		return brokerhttp.TooManyFailures, fmt.Sprintf("too many failed authentications from this address; retry in %d s", retrySeconds(wait))
	}
	code, msg := g.judge(r, broker)
	g.failures.settle(r.RemoteAddr, scope, code == brokerhttp.Unauthorized)
	if code == brokerhttp.Unauthorized {
		g.metrics.authFailures.Inc()
	}
	return code, msg
}

// judge tells whether the request's connector token is good for broker:
// "" when it is, else the error to answer. It judges from memory only:
// brokers defined in Redis as last read (brokerDirectory), never a Redis
// round trip on a caller's behalf.
func (g *Gateway) judge(r *http.Request, broker string) (brokerhttp.Code, string) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return brokerhttp.Unauthorized, wrongToken
	}
	b := g.brokers[broker]
	var defined *brokerSet
	if d, ok := g.shared.(brokerDirectory); ok && b == nil {
		if defined = d.definedBrokers(r.Context()); defined == nil {
			// Redis has not been read since the start.
			return brokerhttp.BrokerOffline, fmt.Sprintf("broker %s cannot be looked up: the registry is unreachable; retry", broker)
		}
		b = defined.get(broker)
	}
	switch {
	case b != nil:
		for _, h := range b.connectors {
			if h.matches(token) {
				return "", ""
			}
		}
	case g.validForAny(token) || defined.hasConnector(token):
		return brokerhttp.UnknownBroker, fmt.Sprintf("no broker %q", broker)
	}
	return brokerhttp.Unauthorized, wrongToken
}

const wrongToken = "missing or wrong connector token (Authorization: Bearer <token>)"

// brokerDirectory is a shared registry that defines brokers outside the
// config (redisRegistry): definedBrokers returns them as last read, nil
// when they could never be read.
type brokerDirectory interface {
	definedBrokers(ctx context.Context) *brokerSet
}

// validForAny reports whether token is a connector token of a broker of
// the config.
func (g *Gateway) validForAny(token string) bool {
	for _, b := range g.brokers {
		for _, h := range b.connectors {
			if h.matches(token) {
				return true
			}
		}
	}
	return false
}

func (g *Gateway) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt := pr.In.Context().Value(ctxKey{}).(*routed)
			u := &url.URL{Scheme: "http", Host: "agent", RawQuery: pr.In.URL.RawQuery}
			if p, err := url.PathUnescape(rt.path); err == nil {
				u.Path, u.RawPath = p, rt.path
			} else {
				u.Path = rt.path
			}
			pr.Out.URL = u
			pr.Out.Host = "agent"
			h := pr.Out.Header
			h.Del("Authorization") // the connector token stays here
			for k := range h {
				if strings.HasPrefix(k, "Ox-Broker-") {
					delete(h, k)
				}
			}
			h.Set(brokerhttp.HeaderSite, rt.site)
			h.Set(brokerhttp.HeaderRequestID, rt.requestID)
			if rt.publicBase != "" {
				h.Set(brokerhttp.HeaderPublicBase, rt.publicBase)
			}
		},
		Transport: sessionTransport{g},
		ModifyResponse: func(resp *http.Response) error {
			rt := resp.Request.Context().Value(ctxKey{}).(*routed)
			resp.Header.Set(brokerhttp.HeaderRequestID, rt.requestID)
			return nil
		},
		ErrorHandler: g.proxyError,
		BufferPool:   copybuf.Pool{},
		ErrorLog:     nil,
	}
}

// proxyError maps a failure between gateway and agent to the contract.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rt := r.Context().Value(ctxKey{}).(*routed)
	// A stalled body is cut by the server (brokerhttp.GuardBodies), which
	// cancels the request's context too: the connector is still there.
	var stalled *brokerhttp.StalledError
	if errors.As(rt.body.Err(), &stalled) {
		brokerhttp.WriteError(w, brokerhttp.BadRequest, "reading the request body failed: "+stalled.Error(), rt.requestID)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The connector went away; there is nobody to answer.
		w.WriteHeader(499)
		return
	}
	if berr := rt.body.Err(); berr != nil {
		brokerhttp.WriteError(w, brokerhttp.BadRequest, "reading the request body failed: "+berr.Error(), rt.requestID)
		return
	}
	var rerr *routeError
	if errors.As(err, &rerr) { // the route moved and no new one was found
		brokerhttp.WriteError(w, rerr.code, rerr.msg, rt.requestID)
		return
	}
	g.log.Debug("tunnel request failed", append([]any{"request_id", rt.requestID, "err", err}, rt.logAttrs()...)...)
	brokerhttp.WriteError(w, brokerhttp.BrokerOffline, "the tunnel to the agent failed during the request; retry", rt.requestID)
}

// BrokerStatus is the answer of GET /v1/brokers/{broker}.
type BrokerStatus struct {
	Broker   string          `json:"broker"`
	Online   bool            `json:"online"`
	Sessions []SessionStatus `json:"sessions"`
	Sites    []string        `json:"sites"`
}

// SessionStatus describes one live agent session.
type SessionStatus struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	Version   string    `json:"version"`
	Hostname  string    `json:"hostname"`
	Transport string    `json:"transport"`
	Since     time.Time `json:"since"`
	Sites     []string  `json:"sites"`
	// Replica is the internal URL (registry.advertise) of the replica
	// holding the session; empty with registry.type memory.
	Replica string `json:"replica,omitempty"`
}

func (g *Gateway) serveBroker(w http.ResponseWriter, r *http.Request) {
	broker := r.PathValue("broker")
	if code, msg := g.authorize(w, r, broker); code != "" {
		brokerhttp.WriteError(w, code, msg, "")
		return
	}
	st := g.brokerStatus(r.Context(), broker)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(st)
}

// brokerStatus is what GET /v1/brokers/{broker} and the status page say
// of a broker: its sessions here and, in a cluster, on the other replicas
// as far as the registry knows, and the sites they serve.
func (g *Gateway) brokerStatus(ctx context.Context, broker string) BrokerStatus {
	st := BrokerStatus{Broker: broker, Sessions: []SessionStatus{}, Sites: []string{}}
	seen := map[string]bool{}
	add := func(ss SessionStatus) {
		for _, name := range ss.Sites {
			if !seen[name] {
				seen[name] = true
				st.Sites = append(st.Sites, name)
			}
		}
		st.Sessions = append(st.Sessions, ss)
	}
	for _, s := range g.reg.sessions(broker) {
		ss := SessionStatus{ID: s.id, AgentID: s.hello.AgentID, Version: s.hello.AgentVersion,
			Hostname: s.hello.Hostname, Transport: s.sess.Transport(), Since: s.since.UTC(), Sites: []string{}, Replica: g.advertise}
		for _, si := range s.siteList() {
			ss.Sites = append(ss.Sites, si.Name)
		}
		add(ss)
	}
	// The sessions of the other replicas, as far as the registry knows.
	recs, _ := g.shared.lookup(ctx, broker)
	for _, rec := range recs {
		add(SessionStatus{ID: rec.Session, AgentID: rec.AgentID, Version: rec.Version, Hostname: rec.Hostname,
			Transport: rec.Transport, Since: rec.Since, Sites: rec.Sites, Replica: rec.Advertise})
	}
	sort.Strings(st.Sites)
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].Since.Before(st.Sessions[j].Since) })
	st.Online = len(st.Sessions) > 0
	return st
}
