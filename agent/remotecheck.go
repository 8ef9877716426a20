package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

// CheckSite runs the checks of one site (diag.CheckSite) with the agent's
// current config, for the gateway's remote check: the credentials and
// permissions checks go through the very proxy that serves the site's
// requests, and the calls to Jira carry request ids that start with
// requestID. It reports false when the agent has no such site.
func (a *Agent) CheckSite(ctx context.Context, name, requestID string) (diag.SiteReport, bool) {
	slot := a.router.Load().sites[name]
	if slot == nil {
		return diag.SiteReport{}, false
	}
	// The settings the site serves with: a reload's, or the previous ones
	// when the reload's failed their probe.
	site := slot.cfg
	// The proxy that serves the site's requests, and the upstream it really
	// uses (a cloud_site resolved when the router was built, or a site's
	// last good settings); a site that is down is checked from its config,
	// which reads its Cloud ID again.
	st := slot.state.Load()
	if st.down == nil {
		site.URL = st.url
	}
	rep := diag.CheckSite(ctx, site, diag.SiteOptions{Proxy: st.proxy, Logger: a.log, CloudID: DiscoverCloudID, RequestID: requestID})
	a.board.recordSite(rep, "gateway")
	return rep, true
}

// serveOp answers a request the gateway makes to the agent itself, marked
// by Ox-Broker-Op; such a request is never sent to Jira. The answer
// carries the same header back, so that the gateway can tell it from
// anything Jira says (the proxy strips Ox-Broker-* from Jira's answers).
func (a *Agent) serveOp(w http.ResponseWriter, req *http.Request) {
	op := req.Header.Get(brokerhttp.HeaderOp)
	reqID := req.Header.Get(brokerhttp.HeaderRequestID)
	w.Header().Set(brokerhttp.HeaderOp, clip.String(op, 32))
	if op != brokerhttp.OpCheck || req.Method != http.MethodPost {
		brokerhttp.WriteError(w, brokerhttp.BadRequest, fmt.Sprintf("this agent does not know operation %s %q", req.Method, clip.String(op, 32)), reqID)
		return
	}
	name := req.Header.Get(brokerhttp.HeaderSite)
	start := time.Now()
	// The check's requests to Jira are logged under the gateway's id.
	rep, ok := a.CheckSite(req.Context(), name, clip.String(reqID, 64))
	if !ok {
		brokerhttp.WriteError(w, brokerhttp.UnknownSite, fmt.Sprintf("this agent has no site %q", clip.String(name, 64)), reqID)
		return
	}
	a.log.Info("remote check", "site", name, "ok", rep.OK, "request_id", reqID,
		"duration", time.Since(start).Round(time.Millisecond).String())
	b, err := json.Marshal(rep)
	if err != nil { // not reached: a SiteReport is plain data
		brokerhttp.WriteError(w, brokerhttp.BadRequest, "cannot encode the check report", reqID)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}
