package agent

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/oxsecurity/oxbroker/config"
)

// Reload applies a new config without dropping the tunnels: sites,
// allowlists and Jira tokens take effect for the next request, and the
// gateway is sent the new site list. On any error nothing changes.
//
// Nothing that works is traded for something that does not (make before
// break). A site whose new settings fail their probe in a way retrying
// cannot mend (Jira refuses the new token, the new url has no REST API)
// keeps serving with its previous settings, if those passed, and the log
// says why. If the broker id or token or the gateway settings changed,
// the agent dials new sessions with them while the old ones keep serving,
// and leaves the old ones only once a new one is welcomed; until then it
// logs why the new settings do not connect, and keeps trying them.
//
// state_dir, admin.listen and log settings take effect at restart.
func (a *Agent) Reload(ctx context.Context, cfg *config.Agent) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := CheckAllowlists(cfg); err != nil {
		return err
	}
	prev := a.router.Load()
	r, err := newRouter(ctx, cfg.Sites, a.routerOptions(cfg, prev))
	if err != nil {
		return err
	}
	probed := a.probeChanged(ctx, prev, r)

	set := settingsOf(cfg)
	a.mu.Lock()
	target := a.active
	if a.pending != nil {
		target = a.pending
	}
	var next *generation
	if !set.equal(target.set) && !set.equal(a.active.set) {
		if next, err = a.newGeneration(set); err != nil {
			a.mu.Unlock()
			r.close()
			return err
		}
	}
	a.cfg = cfg
	a.router.Store(r)
	gateway := a.switchTo(set, next)
	a.mu.Unlock()
	a.publishExpiry(cfg.Sites)

	// Requests in flight finish on the old proxies; this only drops their
	// idle connections to Jira.
	prev.close()
	a.sendSites()
	// The sites the reload did not probe (their settings did not change)
	// are probed again in the background.
	for _, slot := range r.order {
		if !probed[slot.cfg.Name] {
			a.requestProbe(probeRequest{site: slot.cfg.Name})
		}
	}
	a.log.Info("config reloaded", "sites", len(r.order), "gateway", gateway)
	return nil
}

// switchTo makes set the gateway settings the agent moves to, next being
// a new generation for them (nil when set is one the agent has already).
// It returns what it did, for the log. Callers hold a.mu.
func (a *Agent) switchTo(set dialSettings, next *generation) string {
	if a.pending != nil && !set.equal(a.pending.set) {
		a.pending.cancel(errReconnect) // a later reload replaces the settings not taken yet
		a.pending = nil
	}
	switch {
	case next == nil && set.equal(a.active.set):
		return "unchanged"
	case next == nil:
		return "the new settings are still being tried"
	case a.runCtx == nil || a.stopping:
		a.active = next // Run dials with it
		return "changed"
	case a.active.live.Load() == 0:
		// Nothing serves that the change could take offline.
		old := a.active
		a.active = next
		a.startGeneration(next)
		old.cancel(errReconnect)
		return "changed; dialing with the new settings"
	}
	a.pending = next
	a.startGeneration(next)
	a.gens.Go(func() { a.watchSwitch(next) })
	return "changed; trying the new settings while the old sessions serve"
}

// probeChanged probes, at a reload, the sites of r whose settings differ
// from those in prev, with their new proxies, at the same time and within
// probeTimeout. A site whose new settings fail in a way retrying cannot
// mend, while its previous ones passed their last probe (or were never
// probed), keeps its previous settings. It returns the sites it probed.
func (a *Agent) probeChanged(ctx context.Context, prev, r *router) map[string]bool {
	probed := make(map[string]bool)
	results := make(map[string]siteHealth)
	var mu sync.Mutex // guards probed and results
	var wg sync.WaitGroup
	for _, slot := range r.order {
		if ps := prev.sites[slot.cfg.Name]; ps != nil && reflect.DeepEqual(ps.cfg, slot.cfg) {
			continue
		}
		wg.Go(func() {
			h, ok := probeSite(ctx, slot, a.log)
			if !ok {
				return
			}
			mu.Lock()
			probed[slot.cfg.Name], results[slot.cfg.Name] = true, h
			mu.Unlock()
		})
	}
	wg.Wait()
	for name, h := range results {
		slot, ps := r.sites[name], prev.sites[name]
		if p := h.problem; p != nil && p.Lasting && ps != nil && ps.state.Load().down == nil && healthy(ps) {
			a.lastingLines.Log(a.log, slog.LevelError, "reload-site:"+name+"|"+p.Cause,
				"the site's reloaded settings fail their check; it keeps serving with its previous settings",
				"site", name, "check", p.Name, "cause", p.Cause, "fix", p.Fix)
			r.keep(name, ps)
			continue
		}
		a.setHealth(slot, h)
	}
	return probed
}

// healthy reports whether slot passed its last probe, or was never probed.
func healthy(slot *siteSlot) bool {
	h := slot.health.Load()
	return h == nil || h.problem == nil
}
