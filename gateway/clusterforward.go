package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

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
		resp, err := g.cluster.transport.RoundTrip(g.cluster.remoteRequest(req, rt, remotePath, gb))
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
