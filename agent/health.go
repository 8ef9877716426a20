package agent

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// A site's health is what its probe found: the light part of `oxbroker
// check` (the way to Jira, TLS, and the credentials at the REST base,
// diag.SiteOptions.Light), through a proxy built from the settings the
// site serves with, as `oxbroker check` builds one: the probe's calls are
// the agent's own, not OX's, so they count in no metric and in no
// site's refusals in a row. The
// agent probes every site when Run starts, after each reload, and when
// Jira answers refusalsInRow calls of OX in a row with 401, 403 or 404.
// A site that fails its probe still serves: the probe only says, in the
// journal and on /readyz, what is wrong and how to fix it, so that a wrong
// Jira token or URL shows within seconds of the start rather than at the
// first call from OX.

// siteHealth is the outcome of a site's last probe.
type siteHealth struct {
	// problem is the check that failed, nil when the probe passed.
	problem *diag.Result
}

// Probe timing.
const (
	probeTimeout = 10 * time.Second
	// refusalsInRow is how many calls in a row answered 401, 403 or 404
	// make the agent probe the site again.
	refusalsInRow = 3
	// probeQueue bounds the probe requests waiting for the prober.
	probeQueue = 16
)

// refusalProbeGap is the least time between a probe of a site and one that
// refusals in a row ask for; tests shorten it.
var refusalProbeGap = time.Minute

// probeRetry paces the probes of a site whose probe failed in a way that
// may mend by itself (Jira down, a timeout); tests shorten it.
var probeRetry = tunnel.Backoff{Base: 30 * time.Second, Max: 5 * time.Minute}

// probeRequest asks Run's prober to probe a site; "" is every site.
type probeRequest struct{ site string }

// requestProbe hands r to the prober, unless its queue is full (a probe of
// the same sites is then on its way).
func (a *Agent) requestProbe(r probeRequest) {
	select {
	case a.probes <- r:
	default:
	}
}

// runProbes probes the sites it is asked to until ctx ends, and waits for
// the probes it started. A site is probed by one goroutine at a time.
func (a *Agent) runProbes(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-a.probes:
			r := a.router.Load()
			for _, slot := range r.order {
				if req.site != "" && slot.cfg.Name != req.site {
					continue
				}
				if !slot.probing.CompareAndSwap(false, true) {
					continue
				}
				wg.Go(func() {
					defer slot.probing.Store(false)
					a.probeUntilJudged(ctx, r, slot)
				})
			}
		}
	}
}

// probeUntilJudged probes slot and, while it fails in a way that may mend
// by itself, again with backoff, until it passes, fails for good, the
// router is replaced or ctx ends.
func (a *Agent) probeUntilJudged(ctx context.Context, r *router, slot *siteSlot) {
	b := probeRetry
	for {
		h, ok := probeSite(ctx, slot, a.log)
		if !ok || ctx.Err() != nil {
			return
		}
		a.setHealth(slot, h)
		if h.problem == nil || h.problem.Lasting {
			return
		}
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if a.router.Load() != r {
			return // a reload probes the sites of the new router
		}
	}
}

// probeSite runs the probe of slot with the settings it serves with (its
// upstream URL resolved). ok is false for a site that is down (its Cloud
// ID cannot be read; that is logged and shown already).
func probeSite(ctx context.Context, slot *siteSlot, log *slog.Logger) (siteHealth, bool) {
	st := slot.state.Load()
	if st.down != nil || st.proxy == nil {
		return siteHealth{}, false
	}
	slot.lastProbe.Store(time.Now().UnixNano())
	site := slot.cfg
	site.URL = st.url
	rep := diag.CheckSite(ctx, site, diag.SiteOptions{Timeout: probeTimeout, Logger: log, Light: true, RequestID: "probe"})
	i := slices.IndexFunc(rep.Results, func(r diag.Result) bool { return r.Status == diag.StatusFail })
	if i < 0 {
		return siteHealth{}, true
	}
	return siteHealth{problem: &rep.Results[i]}, true
}

// setHealth records h as slot's health and logs a change: a failure that
// retrying cannot mend is an error, logged once per cause and then at
// most every repeatLasting; another failure is a warning; a site that
// passes after failing says so.
func (a *Agent) setHealth(slot *siteSlot, h siteHealth) {
	prev := slot.health.Swap(&h)
	name := slot.cfg.Name
	switch p := h.problem; {
	case p == nil && prev != nil && prev.problem != nil:
		a.log.Info("site is healthy again", "site", name)
	case p == nil:
		a.log.Info("site checked: Jira accepts its credentials", "site", name, "url", slot.state.Load().url)
	case p.Lasting:
		a.lastingLines.Log(a.log, slog.LevelError, "site:"+name+"|"+p.Cause, "site is unhealthy: it fails its check",
			"site", name, "check", p.Name, "cause", p.Cause, "fix", p.Fix)
	default:
		a.log.Warn("site is unhealthy: it fails its check; checking again later",
			"site", name, "check", p.Name, "cause", p.Cause, "fix", p.Fix)
	}
}

// calls sees every call that a site's proxy finished, for the metrics and
// for the site's health: refusalsInRow refusals in a row get the site
// probed, and a call Jira answered with success makes a site that failed
// its probe healthy again.
type calls struct{ a *Agent }

var (
	_ proxy.Observer       = calls{}
	_ proxy.FilterObserver = calls{}
	_ proxy.CallObserver   = calls{}
)

// ObserveCall keeps the call for the status page (calls.go).
func (c calls) ObserveCall(call proxy.Call) { c.a.metrics.ObserveCall(call) }

func (c calls) ObserveRequest(site string, status int, code brokerhttp.Code, d time.Duration) {
	c.a.metrics.ObserveRequest(site, status, code, d)
	if code != "" { // the broker's own answer: Jira did not judge the call
		return
	}
	slot := c.a.router.Load().sites[site]
	if slot == nil {
		return
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		last := time.Unix(0, slot.lastProbe.Load())
		if slot.refusals.Add(1) >= refusalsInRow && time.Since(last) >= refusalProbeGap {
			slot.refusals.Store(0)
			c.a.requestProbe(probeRequest{site: site})
		}
	default:
		if status >= 400 {
			return
		}
		slot.refusals.Store(0)
		if h := slot.health.Load(); h != nil && h.problem != nil {
			if slot.health.CompareAndSwap(h, &siteHealth{}) {
				c.a.log.Info("site is healthy again: Jira answered a call", "site", site, "status", status)
			}
		}
	}
}

func (c calls) ObserveFiltered(site string, links, credentials int) {
	c.a.metrics.ObserveFiltered(site, links, credentials)
}
