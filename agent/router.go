package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/proxyenv"
	"github.com/oxsecurity/oxbroker/jira"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// router sends each request to its site's proxy. Reload builds a new
// router and swaps it in; requests already routed finish on the proxies
// they started on.
//
// One site's trouble stays with that site: a cloud_site whose Cloud ID
// cannot be read (no network yet, Atlassian down) is down, its calls are
// answered 502 upstream_unreachable with the cause, and the router reads
// the Cloud ID again in the background with backoff while the other sites
// serve. At a reload, a site whose new settings cannot be used (its
// tls.ca_file is unreadable, its Cloud ID cannot be read again) keeps
// serving with the settings it had.
type router struct {
	sites  map[string]*siteSlot
	order  []*siteSlot // config order, for the site list sent to the gateway
	log    *slog.Logger
	broker string // the agent's broker id, for the proxies' link rewriting

	// up is called when a site that was down comes up, so that the
	// gateway learns its upstream URL; it may be nil.
	up func()

	ctx    context.Context // ends the background discoveries
	cancel context.CancelFunc
	wg     sync.WaitGroup // background discoveries

	observer proxy.Observer // of the proxies the router builds
}

// siteSlot is one site of a router.
type siteSlot struct {
	cfg   config.Site // the settings the site serves with
	state atomic.Pointer[siteState]

	// The site's health (health.go): its last probe, nil before the
	// first; whether a probe runs; when the last one started (unix ns);
	// the calls Jira refused in a row since.
	health    atomic.Pointer[siteHealth]
	probing   atomic.Bool
	lastProbe atomic.Int64
	refusals  atomic.Int32
}

// siteState is what a site serves with: a proxy and its upstream URL, or
// why it cannot serve.
type siteState struct {
	proxy *proxy.Proxy
	url   string // the upstream base, resolved from cloud_site if need be
	down  error  // non-nil while the site cannot serve
}

// routerOptions are what newRouter needs beyond the sites.
type routerOptions struct {
	// broker is the agent's broker id, which the public URLs of the
	// sites' rewritten links name.
	broker  string
	log     *slog.Logger
	metrics *metrics
	// observer sees every finished call of the sites' proxies (the
	// metrics and the sites' health); nil is metrics alone.
	observer proxy.Observer
	// prev is the router in force, at a reload; nil at start. Its sites
	// lend their last good settings to the same sites of the new router
	// when the new settings cannot be used.
	prev *router
	up   func()
}

// errSiteDown marks the cause of a site that cannot serve.
var errSiteDown = errors.New("site is down")

// newRouter builds the proxies of sites. At start (no prev) a site whose
// proxy cannot be built fails the whole router: the config is wrong. A
// cloud_site whose Cloud ID cannot be read is down, with a background
// retry, at start and at reload alike.
func newRouter(ctx context.Context, sites []config.Site, o routerOptions) (*router, error) {
	if o.observer == nil {
		o.observer = o.metrics
	}
	r := &router{sites: make(map[string]*siteSlot, len(sites)), log: o.log, up: o.up, broker: o.broker, observer: o.observer}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, site := range sites {
		slot := &siteSlot{cfg: site}
		r.sites[site.Name] = slot
		r.order = append(r.order, slot)
		var last *siteState // the site's state in the router in force
		if o.prev != nil {
			if ps := o.prev.sites[site.Name]; ps != nil {
				if st := ps.state.Load(); st.down == nil {
					last = st
				}
				if reflect.DeepEqual(ps.cfg, site) {
					slot.health.Store(ps.health.Load()) // the same settings: the same health until probed
				}
			}
		}
		if site.CloudSite != "" {
			id, err := DiscoverCloudID(ctx, site)
			switch {
			case err == nil:
				site.URL = jira.CloudURL(site.AtlassianAPI, id)
				o.log.Info("resolved cloud_site", "site", site.Name, "cloud_id", id)
			case last != nil && sameCloudSite(o.prev.sites[site.Name].cfg, site):
				o.log.Warn("cannot read the site's Cloud ID again; keeping the one read before", "site", site.Name,
					"cloud_site", site.CloudSite, "err", err)
				site.URL = last.url
			default:
				down := fmt.Errorf("%w: the Cloud ID of %s cannot be read: %w", errSiteDown, site.CloudSite, err)
				o.log.Error("site is down: cannot read its Cloud ID; the other sites serve, and the agent tries again in the background",
					"site", site.Name, "cloud_site", site.CloudSite, "err", err,
					"fix", "check that this machine reaches "+site.CloudSite+" (the site's proxy and tls settings apply)")
				slot.state.Store(&siteState{down: down})
				r.rediscover(slot)
				continue
			}
		}
		p, err := proxy.New(site, proxy.Options{Logger: o.log, Observer: o.observer, Broker: o.broker})
		if err != nil {
			if last == nil {
				r.close()
				return nil, err
			}
			o.log.Error("the site's new settings cannot be used; it keeps serving with its last good settings",
				"site", site.Name, "err", err)
			slot.state.Store(last)
			continue
		}
		slot.state.Store(&siteState{proxy: p, url: site.URL})
		if o.prev == nil || o.prev.sites[site.Name] == nil || !reflect.DeepEqual(o.prev.sites[site.Name].cfg, slot.cfg) {
			logSiteProxy(o.log, site)
		}
	}
	return r, nil
}

// logSiteProxy says how the site's calls reach Jira: through which proxy,
// and why (the site's proxy setting, HTTPS_PROXY), or why directly.
func logSiteProxy(log *slog.Logger, site config.Site) {
	u, err := url.Parse(site.URL)
	if err != nil {
		return
	}
	if c, err := proxyenv.For(site.Proxy, "proxy", u); err == nil {
		log.Info("site reaches Jira "+c.String(), "site", site.Name, "url", site.URL)
	}
}

// keep makes the site name of r serve with prev's slot of the same name
// (its settings, proxy and health), for a site whose new settings failed
// their probe in a way retrying cannot mend.
func (r *router) keep(name string, prev *siteSlot) {
	slot := r.sites[name]
	slot.cfg = prev.cfg
	slot.state.Store(prev.state.Load())
	slot.health.Store(prev.health.Load())
}

// sameCloudSite reports whether a and b read their Cloud ID from the same
// place, so that an ID a read is b's too.
func sameCloudSite(a, b config.Site) bool {
	return a.CloudSite == b.CloudSite && a.AtlassianAPI == b.AtlassianAPI
}

// discoveryBackoff paces the background reads of a down site's Cloud ID,
// waiting at least discoveryMinWait between two (tests shorten both).
var (
	discoveryBackoff = tunnel.Backoff{Base: 2 * time.Second, Max: 2 * time.Minute}
	discoveryMinWait = time.Second
)

// rediscover reads slot's Cloud ID again in the background, with backoff,
// until it succeeds or the router closes; then the site serves.
func (r *router) rediscover(slot *siteSlot) {
	r.wg.Go(func() {
		b := discoveryBackoff
		site := slot.cfg
		for {
			t := time.NewTimer(max(b.Next(), discoveryMinWait))
			select {
			case <-r.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			id, err := DiscoverCloudID(r.ctx, site)
			if r.ctx.Err() != nil {
				return
			}
			if err != nil {
				slot.state.Store(&siteState{down: fmt.Errorf("%w: the Cloud ID of %s cannot be read: %w", errSiteDown, site.CloudSite, err)})
				r.log.Debug("site still down: cannot read its Cloud ID", "site", site.Name, "err", err)
				continue
			}
			site.URL = jira.CloudURL(site.AtlassianAPI, id)
			p, err := proxy.New(site, proxy.Options{Logger: r.log, Observer: r.observer, Broker: r.broker})
			if err != nil { // the settings were good when the router was built
				slot.state.Store(&siteState{down: fmt.Errorf("%w: %w", errSiteDown, err)})
				r.log.Error("site is down", "site", site.Name, "err", err)
				return
			}
			slot.state.Store(&siteState{proxy: p, url: site.URL})
			r.log.Info("site is up: resolved cloud_site", "site", site.Name, "cloud_id", id)
			if r.up != nil {
				r.up()
			}
			return
		}
	})
}

// infos is the site list the gateway is told: never a credential.
func (r *router) infos() []tunnel.SiteInfo {
	out := make([]tunnel.SiteInfo, 0, len(r.order))
	for _, s := range r.order {
		out = append(out, tunnel.SiteInfo{Name: s.cfg.Name, Type: s.cfg.Type, URL: s.state.Load().url, AuthType: s.cfg.Auth.Type})
	}
	return out
}

// down lists the sites that cannot serve, with why, for /readyz.
func (r *router) down() []string {
	var out []string
	for _, s := range r.order {
		if st := s.state.Load(); st.down != nil {
			out = append(out, fmt.Sprintf("site %s: %s", s.cfg.Name, clip.Line(strings.TrimPrefix(st.down.Error(), errSiteDown.Error()+": "), 1024)))
		}
	}
	return out
}

// unhealthy lists the sites that failed their last probe, with the cause
// and the fix, for /readyz and the service's status.
func (r *router) unhealthy() []string {
	var out []string
	for _, s := range r.order {
		if h := s.health.Load(); h != nil && h.problem != nil && s.state.Load().down == nil {
			out = append(out, fmt.Sprintf("site %s: unhealthy: %s", s.cfg.Name, problemLine(h.problem.Cause, h.problem.Fix)))
		}
	}
	return out
}

func (r *router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name := req.Header.Get(brokerhttp.HeaderSite)
	slot := r.sites[name]
	if slot == nil {
		brokerhttp.WriteError(w, brokerhttp.UnknownSite, fmt.Sprintf("this agent has no site %q", clip.String(name, 64)),
			req.Header.Get(brokerhttp.HeaderRequestID))
		return
	}
	st := slot.state.Load()
	if st.down != nil {
		brokerhttp.WriteError(w, brokerhttp.UpstreamUnreachable,
			fmt.Sprintf("site %s is down: %s; the agent keeps trying",
				name, strings.TrimPrefix(st.down.Error(), errSiteDown.Error()+": ")),
			req.Header.Get(brokerhttp.HeaderRequestID))
		return
	}
	st.proxy.ServeHTTP(w, req)
}

// close ends the background discoveries and closes the idle connections
// of the proxies. A proxy lent to a newer router stays usable: Close only
// drops idle connections.
func (r *router) close() {
	r.cancel()
	r.wg.Wait()
	for _, s := range r.sites {
		if st := s.state.Load(); st != nil && st.proxy != nil {
			st.proxy.Close()
		}
	}
}

// DiscoverCloudID reads the Cloud ID of site's cloud_site as the agent
// does when it runs: through the site's proxy and with its TLS settings
// (tls.ca_file, insecure_skip_verify), which are how this network reaches
// Atlassian, and without any credential (the client knows nothing of the
// site's token). `oxbroker check` and `oxbroker jira cloud-id` call it
// too, so that they see what the running agent sees.
func DiscoverCloudID(ctx context.Context, site config.Site) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	client, err := proxy.NewClient(site, discoveryTimeout, nil)
	if err != nil {
		return "", err
	}
	defer client.CloseIdleConnections()
	return jira.DiscoverCloudID(ctx, client, site.CloudSite)
}

// discoveryTimeout bounds one read of a Cloud ID.
const discoveryTimeout = 15 * time.Second
