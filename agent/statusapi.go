package agent

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/admin/ui"
	"github.com/oxsecurity/oxbroker/agent/diag"
	"github.com/oxsecurity/oxbroker/config"
)

// The agent's status page and its API (docs/design.md, "Status pages"),
// served on the admin listener behind package admin's guard:
//
//	GET  /            the page, rendered on the server from what the API says
//	GET  /api/status  StatusReport
//	GET  /api/calls   the recent calls, newest first; ?site=&status= filter them
//	POST /api/check   runs the checks of `oxbroker check`, answers diag.Report
//
// Nothing here holds a secret, a path or query a caller sent, or a body:
// sites show their auth type and allowlist, calls their template.

// StatusReport is the answer of GET /api/status.
type StatusReport struct {
	Broker        string    `json:"broker"`
	AgentID       string    `json:"agent_id"`
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	// Ready is /readyz's answer; Reasons say why not, or what is down
	// while the agent is ready all the same (a site), one line each.
	Ready   bool           `json:"ready"`
	Reasons []string       `json:"reasons"`
	Tunnels []TunnelStatus `json:"tunnels"`
	// Connections is gateway.connections, the tunnels the agent keeps.
	Connections int          `json:"connections"`
	Sites       []SiteStatus `json:"sites"`
	// Check is the last run of POST /api/check; nil before the first.
	Check *CheckRun `json:"check,omitempty"`
}

// SiteStatus is one site in /api/status: never its credential.
type SiteStatus struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	UpstreamHost string `json:"upstream_host"`
	CloudSite    string `json:"cloud_site,omitempty"`
	AuthType     string `json:"auth_type"`
	// Up is false while the site cannot serve; Down says why.
	Up    bool      `json:"up"`
	Down  string    `json:"down,omitempty"`
	Allow SiteAllow `json:"allow"`
	// TokenExpires is auth.expires (YYYY-MM-DD), DaysLeft the whole days
	// until then, and Expiry ok, soon (under 30 days), urgent (under 7) or
	// expired; all empty without auth.expires.
	TokenExpires string  `json:"token_expires,omitempty"`
	DaysLeft     *int    `json:"days_left,omitempty"`
	Expiry       string  `json:"expiry,omitempty"`
	Traffic      Traffic `json:"traffic"`
	// Check is the site's last check, by the page or the gateway's remote
	// check; nil before the first.
	Check *SiteCheck `json:"check,omitempty"`
}

// SiteAllow is what the site's allow: keeps in force.
type SiteAllow struct {
	Scopes     []string `json:"scopes"`
	Operations []string `json:"operations,omitempty"`
	Deny       []string `json:"deny,omitempty"`
	Rules      []string `json:"rules,omitempty"` // "GET,POST /path/template"
	Headers    []string `json:"headers,omitempty"`
}

// SiteCheck is a site's last check: when, by whom (page, gateway) and its
// steps.
type SiteCheck struct {
	At time.Time `json:"at"`
	By string    `json:"by"`
	diag.SiteReport
}

// CheckRun is a run of POST /api/check: the report `oxbroker check --json`
// prints, when and how long it took.
type CheckRun struct {
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	diag.Report
}

// Token expiry thresholds of the page (amber, red).
const (
	expirySoon   = 30 // days
	expiryUrgent = 7
)

// statusBoard is what the status page shows beyond the config and the
// router: when the agent started, its connections and the last checks.
type statusBoard struct {
	started time.Time
	conns   connTable

	mu        sync.Mutex            // guards the fields below
	lastRun   *CheckRun             // the page's last check
	siteCheck map[string]*SiteCheck // each site's last check, by site name
	running   chan struct{}         // closed when the check in progress ends; nil when none runs
}

// recordSite keeps rep as site's last check, made by by.
func (b *statusBoard) recordSite(rep diag.SiteReport, by string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.siteCheck == nil {
		b.siteCheck = make(map[string]*SiteCheck)
	}
	b.siteCheck[rep.Site] = &SiteCheck{At: time.Now().UTC(), By: by, SiteReport: rep}
}

// StatusHandler serves the status page and its API. Put it behind
// admin.WithPage, which guards it.
func (a *Agent) StatusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.servePage)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { ui.WriteJSON(w, a.StatusReport()) })
	mux.HandleFunc("GET /api/calls", func(w http.ResponseWriter, r *http.Request) {
		ui.WriteJSON(w, a.metrics.calls.recent(callFilter(r.URL.Query())))
	})
	mux.HandleFunc("POST /api/check", func(w http.ResponseWriter, r *http.Request) {
		ui.WriteJSON(w, a.RunCheck(r.Context()).Report)
	})
	mux.Handle("GET "+ui.AssetPrefix, ui.Assets())
	return mux
}

// StatusReport returns what the agent says of itself on its status page.
func (a *Agent) StatusReport() StatusReport {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	r := a.router.Load()
	ready, why := a.Readiness()
	rep := StatusReport{
		Broker: cfg.Broker.ID, AgentID: a.agentID, Version: a.opts.Version,
		Started: a.board.started.UTC(), UptimeSeconds: int64(time.Since(a.board.started).Seconds()),
		Ready: ready, Reasons: lines(why), Tunnels: a.board.conns.snapshot(), Connections: cfg.Gateway.Connections,
		Sites: make([]SiteStatus, 0, len(r.order)),
	}
	a.board.mu.Lock()
	rep.Check = a.board.lastRun
	checks := maps.Clone(a.board.siteCheck) // recordSite writes the map; the records themselves are never changed
	a.board.mu.Unlock()
	for _, slot := range r.order {
		st := slot.state.Load()
		s := siteStatus(slot.cfg, st.url, time.Now())
		s.Up = st.down == nil
		if !s.Up {
			s.Down = strings.TrimPrefix(st.down.Error(), errSiteDown.Error()+": ")
		}
		s.Traffic = a.metrics.calls.traffic(s.Name)
		s.Check = checks[s.Name]
		rep.Sites = append(rep.Sites, s)
	}
	return rep
}

// siteStatus is what the config and the upstream in use say of a site.
func siteStatus(c config.Site, upstream string, now time.Time) SiteStatus {
	s := SiteStatus{Name: c.Name, Type: c.Type, CloudSite: c.CloudSite, AuthType: c.Auth.Type,
		Allow: SiteAllow{Scopes: c.Allow.Scopes, Operations: c.Allow.Operations, Deny: c.Allow.Deny, Headers: c.Allow.Headers}}
	if s.Allow.Scopes == nil {
		s.Allow.Scopes = []string{}
	}
	if upstream == "" {
		upstream = c.URL
	}
	if u, err := url.Parse(upstream); err == nil {
		s.UpstreamHost = u.Host
	}
	for _, rule := range c.Allow.Rules {
		s.Allow.Rules = append(s.Allow.Rules, strings.Join(rule.Methods, ",")+" "+rule.Path)
	}
	if !c.Auth.Expires.IsZero() {
		exp := c.Auth.Expires.Time
		days := int(exp.Sub(now).Hours() / 24)
		s.TokenExpires, s.DaysLeft = exp.Format(time.DateOnly), &days
		switch {
		case !now.Before(exp):
			s.Expiry = "expired"
		case days < expiryUrgent:
			s.Expiry = "urgent"
		case days < expirySoon:
			s.Expiry = "soon"
		default:
			s.Expiry = "ok"
		}
	}
	return s
}

func lines(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// callFilter reads the filter of /api/calls and of the page from a query.
func callFilter(q url.Values) CallFilter {
	f := CallFilter{Site: q.Get("site"), Status: q.Get("status")}
	if !slices.Contains(statusChoices, f.Status) {
		f.Status = ""
	}
	return f
}

// statusChoices are the values of the status filter; "" is all.
var statusChoices = []string{"", "2xx", "3xx", "4xx", "5xx", "refused"}

// pageCalls is how many calls the page lists; /api/calls has them all.
const pageCalls = 200

// statusPage is what the page renders: the report, and the calls.
type statusPage struct {
	StatusReport
	Calls         []CallRecord
	Matching      int // calls the filter selects, of which Calls are the newest
	Kept          int
	Filter        CallFilter
	SiteNames     []string
	StatusChoices []string
}

func (a *Agent) servePage(w http.ResponseWriter, r *http.Request) {
	p := statusPage{StatusReport: a.StatusReport(), Filter: callFilter(r.URL.Query()), Kept: callRing, StatusChoices: statusChoices}
	calls := a.metrics.calls.recent(p.Filter)
	p.Matching, p.Calls = len(calls), calls[:min(len(calls), pageCalls)]
	for _, s := range p.Sites {
		p.SiteNames = append(p.SiteNames, s.Name)
	}
	ui.Render(w, "agent", p)
}

// RunCheck runs the checks of `oxbroker check` with the config in force
// (diag.Check: the gateway and every site, at once, within
// diag.DefaultTimeout) and keeps the result for the page. A call made
// while a check runs waits for that one and returns its result, so that
// pressing the button twice does not run two.
func (a *Agent) RunCheck(ctx context.Context) CheckRun {
	a.board.mu.Lock()
	if wait := a.board.running; wait != nil {
		a.board.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		a.board.mu.Lock()
		defer a.board.mu.Unlock()
		if a.board.lastRun == nil {
			return CheckRun{At: time.Now().UTC(), Report: diag.Report{Gateway: []diag.Result{}, Sites: []diag.SiteReport{}}}
		}
		return *a.board.lastRun
	}
	done := make(chan struct{})
	a.board.running = done
	a.board.mu.Unlock()
	defer func() {
		a.board.mu.Lock()
		a.board.running = nil
		a.board.mu.Unlock()
		close(done)
	}()

	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	start := time.Now()
	// The check outlives a caller that goes away: its result is for the
	// page, and it ends within its own time limit.
	rep := diag.Check(context.WithoutCancel(ctx), cfg, diag.Options{
		Version: a.opts.Version, AgentID: a.agentID, Dialer: NewDialer, CloudID: DiscoverCloudID,
	})
	run := &CheckRun{At: start.UTC(), DurationMS: time.Since(start).Milliseconds(), Report: rep}
	a.log.Info("check run from the status page", "ok", rep.OK, "duration", time.Since(start).Round(time.Millisecond).String())
	for _, s := range rep.Sites {
		a.board.recordSite(s, "page")
	}
	a.board.mu.Lock()
	a.board.lastRun = run
	a.board.mu.Unlock()
	return *run
}
