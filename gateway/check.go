package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

// checkTimeout bounds a remote check: the agent bounds its own run to
// 20 s; the rest is for the tunnel.
const checkTimeout = 30 * time.Second

// maxCheckReport bounds the agent's answer; a report is a few KiB.
const maxCheckReport = 1 << 20

// serveCheck is POST /v1/brokers/{broker}/sites/{site}/check: the agent
// runs its checks of the site (DNS, TCP, TLS, credentials, permissions)
// and the gateway returns its JSON report with 200, whatever the checks
// found. Broker errors are those of the /b/ routes.
func (g *Gateway) serveCheck(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newID()
	broker, site := r.PathValue("broker"), r.PathValue("site")
	rw := &brokerhttp.StatusRecorder{ResponseWriter: w}
	var rt *routed
	defer func() {
		g.log.Info("site check", append([]any{"request_id", reqID, "broker", clip.String(broker, 64), "site", clip.String(site, 64),
			"status", rw.Status, "duration", time.Since(start).Round(time.Millisecond).String()}, rt.logAttrs()...)...)
	}()

	if !brokerhttp.ValidName(broker) || !brokerhttp.ValidName(site) {
		brokerhttp.WriteError(rw, brokerhttp.BadRequest, "the path must be /v1/brokers/{broker}/sites/{site}/check", reqID)
		return
	}
	if rt = g.route(rw, r, broker, site, reqID); rt == nil {
		return
	}
	defer rt.release()
	g.runCheck(rw, r, rt)
}

// runCheck asks the agent behind rt to check its site, over the local
// session or through the replica that holds the session, and answers
// with the report.
func (g *Gateway) runCheck(rw http.ResponseWriter, r *http.Request, rt *routed) {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/", http.NoBody)
	if err != nil { // not reached: the URL is a constant
		panic(err)
	}
	req.Header.Set(brokerhttp.HeaderSite, rt.site)
	req.Header.Set(brokerhttp.HeaderOp, brokerhttp.OpCheck)
	req.Header.Set(brokerhttp.HeaderRequestID, rt.requestID)
	resp, err := g.send(req, rt, "/v1/brokers/"+rt.broker+"/sites/"+rt.site+"/check")
	if err != nil {
		var rerr *routeError
		switch {
		case r.Context().Err() != nil:
			rw.WriteHeader(499) // the caller went away
		case errors.As(err, &rerr):
			brokerhttp.WriteError(rw, rerr.code, rerr.msg, rt.requestID)
		default:
			msg := "the tunnel to the agent failed during the check; retry"
			if errors.Is(err, context.DeadlineExceeded) {
				msg = fmt.Sprintf("the agent did not answer the check within %s", checkTimeout)
			}
			g.log.Debug("check over the tunnel failed", append([]any{"request_id", rt.requestID, "err", err}, rt.logAttrs()...)...)
			brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, msg, rt.requestID)
		}
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckReport+1))
	remote := rt.remote != nil
	switch {
	case err != nil:
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, "the tunnel to the agent failed while it answered the check; retry", rt.requestID)
		return
	case remote && len(body) <= maxCheckReport && json.Valid(body):
		// The replica holding the session checked the agent's answer;
		// pass its own on.
	case remote:
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, "the answer of the replica holding the session is not a JSON report", rt.requestID)
		return
	case resp.Header.Get(brokerhttp.HeaderOp) != brokerhttp.OpCheck:
		// The agent answers its own operations with the header; without
		// it, the answer came from somewhere else (an agent too old to
		// know the operation forwarded it).
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline,
			"the agent did not run the check; it may be older than this gateway: upgrade oxbroker", rt.requestID)
		return
	case len(body) > maxCheckReport || !json.Valid(body):
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, "the agent's answer to the check is not a JSON report", rt.requestID)
		return
	}
	if code := resp.Header.Get(brokerhttp.HeaderError); code != "" {
		// The agent's own error (unknown_site after a reload), or the
		// other replica's: pass it on.
		rw.Header().Set(brokerhttp.HeaderError, code)
	} else if resp.StatusCode != http.StatusOK {
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, fmt.Sprintf("the agent answered the check with %s", resp.Status), rt.requestID)
		return
	}
	if resp.StatusCode == http.StatusOK {
		g.board.recordCheck(rt.broker, rt.site, rt.requestID, body)
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set(brokerhttp.HeaderRequestID, rt.requestID)
	rw.WriteHeader(resp.StatusCode)
	rw.Write(body)
}
