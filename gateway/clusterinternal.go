package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

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
				"method", r.Method, "target", clip.String(r.RequestURI, 128))
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
			rt.body = &brokerhttp.TrackedBody{ReadCloser: r.Body}
			r.Body = rt.body
		}
		if check {
			g.runCheck(rw, r, rt)
		} else {
			g.proxyCall(rw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, rt)))
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
		ok = hasPath && brokerhttp.ValidName(broker) && brokerhttp.ValidName(site)
		return broker, site, "/" + path, false, ok
	}
	parts := strings.Split(p, "/") // "", v1, brokers, {broker}, sites, {site}, check
	if len(parts) == 7 && parts[1] == "v1" && parts[2] == "brokers" && parts[4] == "sites" && parts[6] == "check" {
		broker, site = parts[3], parts[5]
		ok = r.Method == http.MethodPost && brokerhttp.ValidName(broker) && brokerhttp.ValidName(site)
		return broker, site, "", true, ok
	}
	return "", "", "", false, false
}
