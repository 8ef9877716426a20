package diag

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Statuses of a Result. A warning does not fail a check run.
const (
	StatusPass = brokerhttp.CheckPass
	StatusFail = brokerhttp.CheckFail
	StatusWarn = brokerhttp.CheckWarn
	StatusSkip = brokerhttp.CheckSkip
)

// DefaultTimeout bounds a whole check run (Check) and a remote check of
// one site (CheckSite).
const DefaultTimeout = 20 * time.Second

// Report is the outcome of Check; `oxbroker check --json` prints it.
type Report struct {
	// OK is true when no check failed; warnings are allowed.
	OK      bool         `json:"ok"`
	Gateway []Result     `json:"gateway"`
	Sites   []SiteReport `json:"sites"`
}

// SiteReport is the outcome of the checks of one site; the remote check
// answers it.
type SiteReport struct {
	Site string `json:"site"`
	// OK is true when no check of the site failed.
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
}

// Result is the outcome of one check: the step as the JSON says it (the
// gateway reads the same type), and what only the agent uses.
type Result struct {
	brokerhttp.CheckStep
	// Lasting marks a failure that retrying cannot mend (Words.Lasting):
	// the agent's probe of a site keeps the site's last good settings
	// over new ones that fail so.
	Lasting bool `json:"-"`
}

// CloudIDFunc reads the Cloud ID of a site's cloud_site as the running
// agent does (agent.DiscoverCloudID).
type CloudIDFunc func(ctx context.Context, site config.Site) (string, error)

// Options tune Check, and hand it the agent's own ways of doing things.
type Options struct {
	// Timeout bounds the whole run, every check included; DefaultTimeout
	// when zero.
	Timeout time.Duration
	// Logger receives the proxies' warnings and audit lines; nil discards
	// them (the report says everything the user needs).
	Logger *slog.Logger
	// Version is the agent version sent in the hello of the auth check.
	Version string
	// AgentID is the agent id in state_dir, sent in that hello; "" when
	// the agent has none yet (agent.ReadAgentID).
	AgentID string
	// Dialer builds the agent's tunnel dialer (agent.NewDialer). Required.
	Dialer func(config.GatewayDial, tunnel.Options) (*tunnel.Dialer, error)
	// CloudID reads Cloud IDs (agent.DiscoverCloudID). Required when a
	// site has cloud_site.
	CloudID CloudIDFunc
}

// SiteOptions tune CheckSite.
type SiteOptions struct {
	// Timeout bounds the run; DefaultTimeout when zero.
	Timeout time.Duration
	// Proxy is the proxy that serves the site's requests, through which
	// the credentials and permissions checks go; nil builds one from the
	// site, as the agent does.
	Proxy *proxy.Proxy
	// Logger is given to a proxy built for the check; nil discards.
	Logger *slog.Logger
	// CloudID reads Cloud IDs (agent.DiscoverCloudID). Required when the
	// site has cloud_site and no url.
	CloudID CloudIDFunc
	// RequestID starts the request ids of the calls to Jira, for the audit
	// log: the gateway's id for a remote check; "check" when empty.
	RequestID string
	// Light runs the light part of the checks, the agent's probe of a
	// site: the way to Jira, TLS and the credentials at the REST base,
	// without the permissions; an allowlist that refuses the credentials
	// call is then a warning, as the probe cannot judge the site.
	Light bool
}

// Check tests the agent's way to the gateway (DNS, TCP or the HTTP proxy,
// TLS, QUIC, broker authentication) and to each site's Jira (Cloud ID,
// DNS, TCP or the site's proxy, TLS, credentials, permissions). The
// gateway and every site are checked at the same time; within each, a
// check that fails skips the checks after it. The whole run takes at most
// opts.Timeout, and no goroutine it starts outlives it.
//
// cfg must have passed Validate. Check sends the broker token only to the
// gateway, in a hello that announces no sites, and the Jira tokens only to
// Jira, through each site's proxy as real requests go; nothing in the
// Report holds a token.
func Check(ctx context.Context, cfg *config.Agent, opts Options) Report {
	ctx, cancel := bound(ctx, opts.Timeout)
	defer cancel()
	opts.Logger = orDiscard(opts.Logger)

	rep := Report{Sites: make([]SiteReport, len(cfg.Sites))}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Gateway = checkGateway(ctx, cfg, opts) })
	for i, site := range cfg.Sites {
		wg.Go(func() {
			rep.Sites[i] = checkSite(ctx, site, SiteOptions{Logger: opts.Logger, CloudID: opts.CloudID})
		})
	}
	wg.Wait()
	rep.OK = allOK(rep.Gateway)
	for _, s := range rep.Sites {
		rep.OK = rep.OK && s.OK
	}
	return rep
}

// CheckSite runs the checks of one site, within opts.Timeout. A site
// with cloud_site and a url has its url from the agent, which read the
// Cloud ID; without a url, the check reads the Cloud ID again.
func CheckSite(ctx context.Context, site config.Site, opts SiteOptions) SiteReport {
	ctx, cancel := bound(ctx, opts.Timeout)
	defer cancel()
	opts.Logger = orDiscard(opts.Logger)
	return checkSite(ctx, site, opts)
}

// bound limits a run to timeout, DefaultTimeout when zero.
func bound(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

func allOK(rs []Result) bool {
	return !slices.ContainsFunc(rs, func(r Result) bool { return r.Status == StatusFail })
}

// outcome is what one check found.
type outcome struct {
	status, detail, cause, fix string
	lasting                    bool // Words.Lasting
}

func passed(format string, a ...any) outcome {
	return outcome{status: StatusPass, detail: fmt.Sprintf(format, a...)}
}

func skipped(format string, a ...any) outcome {
	return outcome{status: StatusSkip, detail: fmt.Sprintf(format, a...)}
}

func failed(detail, cause, fix string) outcome {
	return outcome{status: StatusFail, detail: detail, cause: cause, fix: fix}
}

func warned(detail, cause, fix string) outcome {
	return outcome{status: StatusWarn, detail: detail, cause: cause, fix: fix}
}

// failedWith is a failure worded by w.
func failedWith(detail string, w Words) outcome {
	o := failed(detail, w.Cause, w.Fix)
	o.lasting = w.Lasting
	return o
}

// lasting marks o as a failure that retrying cannot mend.
func lasting(o outcome) outcome {
	o.lasting = true
	return o
}

// chain runs the checks of one target in order. Once one fails, or the
// run is out of time, the checks after it are skipped.
type chain struct {
	ctx     context.Context
	results []Result
	stopped string // why the remaining checks are skipped
}

// step runs check f, giving it at most limit of the run's remaining time.
func (c *chain) step(name string, limit time.Duration, f func(ctx context.Context) outcome) {
	if c.stopped == "" && c.ctx.Err() != nil {
		c.stopped = "not run: the check's time limit ran out"
	}
	if c.stopped != "" {
		c.results = append(c.results, Result{CheckStep: brokerhttp.CheckStep{Name: name, Status: StatusSkip, Detail: c.stopped}})
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, limit)
	start := time.Now()
	o := f(ctx)
	cancel()
	c.results = append(c.results, Result{
		CheckStep: brokerhttp.CheckStep{Name: name, Status: o.status, Detail: o.detail, Cause: o.cause, Fix: o.fix,
			DurationMS: time.Since(start).Milliseconds()},
		Lasting: o.lasting && o.status == StatusFail,
	})
	if o.status == StatusFail {
		c.stopped = "not run: " + name + " failed"
	}
}

// Limits of single checks, within the run's Timeout.
const (
	dnsLimit  = 10 * time.Second
	dialLimit = 10 * time.Second
	tlsLimit  = 10 * time.Second
	authLimit = 15 * time.Second
	httpLimit = 15 * time.Second
	quicLimit = 10 * time.Second // transport quic: the handshake timeout
	quicAuto  = 4 * time.Second  // transport auto: when the agent falls back to TCP (tunnel/spec.md)
)
