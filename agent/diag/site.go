package diag

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/jira"
	"github.com/oxsecurity/oxbroker/proxy"
)

// checkSite checks one site. opts.Proxy is the proxy the site's requests
// go through; nil builds one from site, as the agent does.
func checkSite(ctx context.Context, site config.Site, opts SiteOptions) SiteReport {
	c := &chain{ctx: ctx}
	if site.CloudSite != "" {
		c.step("cloud_id", httpLimit, func(ctx context.Context) outcome {
			if site.URL != "" {
				return passed("resolved when the agent started or last reloaded: %s", site.URL)
			}
			return resolveCloudID(ctx, &site, opts.CloudID)
		})
	}

	var (
		u        *url.URL
		t        Target
		proxyURL *url.URL
		conn     net.Conn
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	c.step("dns", dnsLimit, func(ctx context.Context) outcome {
		var err error
		u, err = url.Parse(site.URL)
		if err != nil || u.Host == "" {
			return failed("url", "The url is not an absolute URL.", "Set url to the Jira base URL, such as https://jira.example.com.")
		}
		t = SiteTarget(site, u)
		if proxyURL, err = siteProxy(site, u); err != nil {
			return failed(t.ProxyKey, sentence(fmt.Sprintf("The proxy setting (%s) is not a valid URL", t.ProxyKey)),
				"Set "+t.ProxyKey+" to http://[user:password@]host:port.")
		}
		return checkDNS(ctx, u.Hostname(), proxyURL != nil, t)
	})

	c.step("tcp", dialLimit, func(ctx context.Context) outcome {
		var o outcome
		switch {
		case proxyURL != nil && (proxyURL.Scheme == "http" || proxyURL.Scheme == "https") && u.Scheme == "https":
			conn, o = dialProxy(ctx, proxyURL, t)
		case proxyURL != nil:
			// A SOCKS proxy, or plain http through an HTTP proxy: the
			// proxy connects to Jira per request; the credentials check
			// goes that way.
			o = dialProxyOnly(ctx, proxyURL, t)
		default:
			conn, o = dialDirect(ctx, t)
		}
		return o
	})

	c.step("tls", tlsLimit, func(ctx context.Context) outcome {
		if u.Scheme == "http" {
			return warned("url is http://: no TLS",
				"The url uses plain http, so the Jira token crosses the network unencrypted.",
				"Use an https:// url if Jira offers one.")
		}
		if conn == nil {
			return skipped("checked through the proxy by the credentials check")
		}
		return checkSiteTLS(ctx, conn, site, t, opts.Logger)
	})
	if conn != nil {
		conn.Close()
		conn = nil
	}

	p := opts.Proxy
	var apiVersion string
	ownProxy := false
	c.step("credentials", httpLimit, func(ctx context.Context) outcome {
		if p == nil {
			var err error
			if p, err = proxy.New(site, proxy.Options{Logger: opts.Logger}); err != nil {
				return failed("site config", sentence(err.Error()), "Correct the site's settings (oxbroker config validate shows problems).")
			}
			ownProxy = true
		}
		j := jiraCaller{p: p, requestID: ifEmpty(opts.RequestID, "check")}
		if opts.Light {
			j.userAgent = jira.ProbeUserAgent
		}
		var o outcome
		apiVersion, o = checkCredentials(ctx, j, site, u, opts.Light)
		return o
	})
	if !opts.Light {
		c.step("permissions", httpLimit, func(ctx context.Context) outcome {
			return checkPermissions(ctx, jiraCaller{p: p, requestID: ifEmpty(opts.RequestID, "check")}, site, apiVersion)
		})
	}
	if ownProxy {
		p.Close()
	}
	scrubResults(c.results, proxy.NewScrubber(site.Auth))
	return SiteReport{Site: site.Name, OK: allOK(c.results), Results: c.results}
}

// scrubResults removes the site's credential from every text of rs. The
// proxy already removes it from Jira's answers, which the checks quote;
// this keeps it out of whatever else a result might one day quote.
func scrubResults(rs []Result, s *proxy.Scrubber) {
	for i := range rs {
		r := &rs[i]
		r.Detail, r.Cause, r.Fix = s.String(r.Detail), s.String(r.Cause), s.String(r.Fix)
	}
}

// resolveCloudID sets site.URL from the site's Cloud ID, read exactly as
// the running agent reads it (cloudID is agent.DiscoverCloudID).
func resolveCloudID(ctx context.Context, site *config.Site, cloudID CloudIDFunc) outcome {
	id, err := cloudID(ctx, *site)
	if err != nil {
		cause := sentence(fmt.Sprintf("Cannot read the Cloud ID of %s: %s", site.CloudSite, trimPeriod(netfail.RootCause(err).Error())))
		if netfail.Classify(err).Kind == netfail.NoSuchHost {
			cause = fmt.Sprintf("No Jira Cloud site %s exists (DNS: no such host).", site.CloudSite)
		}
		return failed("cloud_site "+site.CloudSite, cause,
			"Check cloud_site: it is your Jira Cloud site's name, acme for https://acme.atlassian.net, and this machine must reach it.")
	}
	site.URL = jira.CloudURL(site.AtlassianAPI, id)
	return passed("%s has Cloud ID %s; Jira is reached at %s", site.CloudSite, id, site.URL)
}

// siteProxy returns the proxy the site's transport uses for u: its proxy
// setting, else the environment's.
func siteProxy(site config.Site, u *url.URL) (*url.URL, error) {
	if site.Proxy != "" {
		return url.Parse(site.Proxy)
	}
	return http.ProxyFromEnvironment(&http.Request{URL: u})
}
