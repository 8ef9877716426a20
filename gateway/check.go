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
)

// opCheck is the Ox-Broker-Op value that asks an agent to check a site.
// Only the gateway sets Ox-Broker-* headers toward the agent: it strips
// every one a connector sends on /b/ routes.
const opCheck = "check"

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
	rw := &statusWriter{ResponseWriter: w}
	var s *agentSession
	defer func() {
		session := ""
		if s != nil {
			session = s.id
		}
		g.log.Info("site check", "request_id", reqID, "broker", truncate(broker, 64), "site", truncate(site, 64),
			"status", rw.status, "duration", time.Since(start).Round(time.Millisecond).String(), "session", session)
	}()

	if !namePattern.MatchString(broker) || !namePattern.MatchString(site) {
		brokerhttp.WriteError(rw, brokerhttp.BadRequest, "the path must be /v1/brokers/{broker}/sites/{site}/check", reqID)
		return
	}
	if s = g.route(rw, r, broker, site, reqID); s == nil {
		return
	}
	defer s.inflight.Add(-1) // raised by pick

	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/", http.NoBody)
	if err != nil { // not reached: the URL is a constant
		panic(err)
	}
	req.Header.Set(brokerhttp.HeaderSite, site)
	req.Header.Set(brokerhttp.HeaderOp, opCheck)
	req.Header.Set(brokerhttp.HeaderRequestID, reqID)
	resp, err := s.transport.RoundTrip(req)
	if err != nil {
		if r.Context().Err() != nil {
			rw.WriteHeader(499) // the caller went away
			return
		}
		msg := "the tunnel to the agent failed during the check; retry"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("the agent did not answer the check within %s", checkTimeout)
		}
		g.log.Debug("check over the tunnel failed", "request_id", reqID, "session", s.id, "err", err)
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, msg, reqID)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckReport+1))
	switch {
	case err != nil:
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, "the tunnel to the agent failed while it answered the check; retry", reqID)
		return
	case resp.Header.Get(brokerhttp.HeaderOp) != opCheck:
		// The agent answers its own operations with the header; without
		// it, the answer came from somewhere else (an agent too old to
		// know the operation forwarded it).
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline,
			"the agent did not run the check; it may be older than this gateway: upgrade oxbroker", reqID)
		return
	case len(body) > maxCheckReport || !json.Valid(body):
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, "the agent's answer to the check is not a JSON report", reqID)
		return
	}
	if code := resp.Header.Get(brokerhttp.HeaderError); code != "" {
		// The agent's own error (unknown_site after a reload): pass it on.
		rw.Header().Set(brokerhttp.HeaderError, code)
	} else if resp.StatusCode != http.StatusOK {
		brokerhttp.WriteError(rw, brokerhttp.BrokerOffline, fmt.Sprintf("the agent answered the check with %s", resp.Status), reqID)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set(brokerhttp.HeaderRequestID, reqID)
	rw.WriteHeader(resp.StatusCode)
	rw.Write(body)
}
