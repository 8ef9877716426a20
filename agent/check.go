package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Statuses of a Result. A warning does not fail a check run.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	StatusWarn = "warn"
	StatusSkip = "skip"
)

// DefaultCheckTimeout bounds a whole check run (Check) and a remote check
// of one site (CheckSite).
const DefaultCheckTimeout = 20 * time.Second

// CheckOptions tune Check.
type CheckOptions struct {
	// Timeout bounds the whole run, every check included;
	// DefaultCheckTimeout when zero.
	Timeout time.Duration
	// Logger receives the proxies' warnings and audit lines; nil discards
	// them (the report says everything the user needs).
	Logger *slog.Logger
	// Version is the agent version sent in the hello of the auth check.
	Version string
}

// Report is the outcome of Check.
type Report struct {
	// OK is true when no check failed; warnings are allowed.
	OK      bool         `json:"ok"`
	Gateway []Result     `json:"gateway"`
	Sites   []SiteReport `json:"sites"`
}

// SiteReport is the outcome of the checks of one site.
type SiteReport struct {
	Site string `json:"site"`
	// OK is true when no check of the site failed.
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
}

// Result is the outcome of one check. A failure always has Cause and Fix,
// each one sentence; a warning usually has them too.
type Result struct {
	// Name is the check: dns, tcp, tls, quic, auth for the gateway;
	// cloud_id, dns, tcp, tls, credentials, permissions for a site.
	Name   string `json:"name"`
	Status string `json:"status"`
	// Detail says what was checked and found.
	Detail     string `json:"detail,omitempty"`
	Cause      string `json:"cause,omitempty"`
	Fix        string `json:"fix,omitempty"`
	DurationMS int64  `json:"duration_ms"`
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
func Check(ctx context.Context, cfg *config.Agent, opts CheckOptions) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultCheckTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	rep := Report{Sites: make([]SiteReport, len(cfg.Sites))}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Gateway = checkGateway(ctx, cfg, opts) })
	for i, site := range cfg.Sites {
		wg.Go(func() { rep.Sites[i] = checkSite(ctx, site, nil, opts.Logger) })
	}
	wg.Wait()
	rep.OK = allOK(rep.Gateway)
	for _, s := range rep.Sites {
		rep.OK = rep.OK && s.OK
	}
	return rep
}

// CheckSite runs the checks of one site with the agent's current config,
// for the gateway's remote check. The credentials and permissions checks
// go through the very proxy that serves the site's requests. It reports
// false when the agent has no such site.
func (a *Agent) CheckSite(ctx context.Context, name string) (SiteReport, bool) {
	a.mu.Lock()
	cfg, r := a.cfg, a.router.Load()
	a.mu.Unlock()
	i := slices.IndexFunc(cfg.Sites, func(s config.Site) bool { return s.Name == name })
	slot := r.sites[name]
	if i < 0 || slot == nil {
		return SiteReport{}, false
	}
	site := cfg.Sites[i]
	// The proxy that serves the site's requests, and the upstream it really
	// uses (a cloud_site resolved when the router was built, or a site's
	// last good settings); a site that is down is checked from its config,
	// which reads its Cloud ID again.
	st := slot.state.Load()
	p := st.proxy
	if st.down == nil {
		site.URL = st.url
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultCheckTimeout)
	defer cancel()
	return checkSite(ctx, site, p, a.log), true
}

// checkIDKey carries the request id of a remote check to the requests
// it sends to Jira, for the audit log.
type checkIDKey struct{}

// opCheck is the value of Ox-Broker-Op that asks the agent for a remote
// check of the site named by Ox-Broker-Site.
const opCheck = "check"

// serveOp answers a request the gateway makes to the agent itself, marked
// by Ox-Broker-Op; such a request is never sent to Jira. The answer
// carries the same header back, so that the gateway can tell it from
// anything Jira says (the proxy strips Ox-Broker-* from Jira's answers).
func (a *Agent) serveOp(w http.ResponseWriter, req *http.Request) {
	op := req.Header.Get(brokerhttp.HeaderOp)
	reqID := req.Header.Get(brokerhttp.HeaderRequestID)
	w.Header().Set(brokerhttp.HeaderOp, truncate(op, 32))
	if op != opCheck || req.Method != http.MethodPost {
		brokerhttp.WriteError(w, brokerhttp.BadRequest, fmt.Sprintf("this agent does not know operation %s %q", req.Method, truncate(op, 32)), reqID)
		return
	}
	name := req.Header.Get(brokerhttp.HeaderSite)
	start := time.Now()
	// The check's requests to Jira are logged under the gateway's id.
	ctx := context.WithValue(req.Context(), checkIDKey{}, truncate(reqID, 64))
	rep, ok := a.CheckSite(ctx, name)
	if !ok {
		brokerhttp.WriteError(w, brokerhttp.UnknownSite, fmt.Sprintf("this agent has no site %q", truncate(name, 64)), reqID)
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

func allOK(rs []Result) bool {
	return !slices.ContainsFunc(rs, func(r Result) bool { return r.Status == StatusFail })
}

// outcome is what one check found.
type outcome struct{ status, detail, cause, fix string }

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
		c.results = append(c.results, Result{Name: name, Status: StatusSkip, Detail: c.stopped})
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, limit)
	start := time.Now()
	o := f(ctx)
	cancel()
	c.results = append(c.results, Result{Name: name, Status: o.status, Detail: o.detail, Cause: o.cause, Fix: o.fix,
		DurationMS: time.Since(start).Milliseconds()})
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

// checkGateway checks the way to gateway.address and the broker's
// credentials.
func checkGateway(ctx context.Context, cfg *config.Agent, opts CheckOptions) []Result {
	g := cfg.Gateway
	addr := g.Address
	host, port, _ := net.SplitHostPort(addr)
	c := &chain{ctx: ctx}

	d, dialerErr := newDialer(g, tunnel.Options{})
	var proxyURL *url.URL
	proxySrc := "gateway.proxy"
	if dialerErr == nil {
		proxyURL = d.Proxy
		if g.Proxy == "" {
			proxySrc = "HTTPS_PROXY"
		}
	}
	transport := g.Transport
	if transport == "" {
		transport = config.TransportAuto
	}

	c.step("dns", dnsLimit, func(ctx context.Context) outcome {
		return checkDNS(ctx, host, proxyURL, "gateway.address")
	})

	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	c.step("tcp", dialLimit, func(ctx context.Context) outcome {
		if transport == config.TransportQUIC && proxyURL == nil {
			return skipped("transport is quic: the agent does not use TCP")
		}
		if proxyURL != nil {
			var o outcome
			conn, o = proxyConnect(ctx, proxyURL, proxySrc, addr, "gateway.address")
			return o
		}
		var nd net.Dialer
		start := time.Now()
		var err error
		if conn, err = nd.DialContext(ctx, "tcp", addr); err != nil {
			return failed("connect to "+addr, sentence(netProblem(err, addr, time.Since(start))),
				"Check gateway.address (the host:port OX gave you) and that the firewall allows outbound TCP to it.")
		}
		return passed("connected to %s", peer(addr, conn))
	})

	c.step("tls", tlsLimit, func(ctx context.Context) outcome {
		if dialerErr != nil {
			return failed("gateway.ca_file", sentence("Cannot use "+dialerErr.Error()),
				"Set gateway.ca_file to a readable PEM file holding the CA that signed the gateway certificate, or remove it.")
		}
		if conn == nil {
			return skipped("checked by the QUIC handshake")
		}
		conf := d.TLS.Clone()
		conf.NextProtos = []string{tunnel.ALPN}
		if conf.ServerName == "" {
			conf.ServerName = host
		}
		tc := tls.Client(conn, conf)
		conn = tc
		if err := tc.HandshakeContext(ctx); err != nil {
			return gatewayTLSProblem(err, addr, g)
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol != tunnel.ALPN {
			return failed(certSummary(st),
				fmt.Sprintf("The server at %s is not an OX Broker gateway: it does not speak %s.", addr, tunnel.ALPN),
				"Check gateway.address: it must be the tunnel address OX gave you, not a web server.")
		}
		return passed("%s, verified (system roots%s)", certSummary(st), ifSet(g.CAFile, " + gateway.ca_file"))
	})
	if conn != nil {
		conn.Close()
		conn = nil
	}

	quicOK := false
	c.step("quic", quicLimit, func(ctx context.Context) outcome {
		switch {
		case proxyURL != nil:
			return skipped("a proxy is set (%s): the agent uses TCP through it", proxySrc)
		case transport == config.TransportTCP:
			return skipped("transport is tcp")
		case dialerErr != nil:
			return failed("gateway.ca_file", sentence("Cannot use "+dialerErr.Error()),
				"Set gateway.ca_file to a readable PEM file holding the CA that signed the gateway certificate, or remove it.")
		}
		limit := quicLimit
		if transport == config.TransportAuto {
			limit = quicAuto
		}
		qd := &tunnel.Dialer{Transport: tunnel.DialQUIC, TLS: d.TLS, Options: tunnel.Options{HandshakeTimeout: limit}}
		qctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		start := time.Now()
		s, err := qd.Dial(qctx, addr)
		if err == nil {
			s.Close()
			quicOK = true
			return passed("QUIC handshake with %s over UDP", addr)
		}
		cause := fmt.Sprintf("No QUIC handshake with %s after %s: %s.", addr, time.Since(start).Round(100*time.Millisecond), trimPeriod(rootCause(err).Error()))
		if o, ok := tlsProblem(err, addr, gatewayTLSTarget(g)); ok {
			if transport == config.TransportQUIC {
				return o
			}
			cause = o.cause
		}
		if transport == config.TransportAuto {
			return warned("UDP to the gateway seems blocked; the agent will use TCP (transport: tcp works)", cause,
				"Nothing is required; to skip the QUIC attempt, set gateway.transport: tcp, or allow outbound UDP to "+addr+" for QUIC.")
		}
		return failed("QUIC to "+addr, cause,
			"Allow outbound UDP to port "+port+" of the gateway, or set gateway.transport: auto so the agent falls back to TCP.")
	})

	c.step("auth", authLimit, func(ctx context.Context) outcome {
		ad := &tunnel.Dialer{Transport: transport, TLS: d.TLS, Proxy: d.Proxy}
		if transport == config.TransportAuto && !quicOK {
			ad.Transport = tunnel.DialTCP // as the agent does after a QUIC failure
		}
		s, err := ad.Dial(ctx, addr)
		if err != nil {
			return failed("dial "+addr, sentence("Cannot open a tunnel session: "+trimPeriod(rootCause(err).Error())),
				"Run the check again; if it keeps failing while the checks above pass, report it to OX.")
		}
		defer s.Close()
		hostname, _ := os.Hostname()
		hello := tunnel.Hello{
			Protocol:     tunnel.ProtocolVersion,
			BrokerID:     cfg.Broker.ID,
			Token:        cfg.Broker.Token.Reveal(),
			AgentID:      readAgentID(cfg.StateDir),
			AgentVersion: opts.Version,
			Hostname:     hostname,
			OS:           runtime.GOOS + "/" + runtime.GOARCH,
			// No sites: the gateway must not route requests to this
			// short-lived session.
			Sites: []tunnel.SiteInfo{},
		}
		ctrl, welcome, err := tunnel.ClientHandshake(ctx, s, hello)
		var rej *tunnel.RejectError
		switch {
		case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectUnauthorized:
			return failed("broker id "+cfg.Broker.ID,
				fmt.Sprintf("The gateway refused broker id %q or its token.", cfg.Broker.ID),
				"Check broker.id and broker.token (or the file in broker.token_file) against what OX issued.")
		case errors.As(err, &rej) && rej.Reject.Code == tunnel.RejectShutdown:
			return warned("broker id "+cfg.Broker.ID, "The gateway is restarting and did not take the session.",
				"Run the check again in a minute.")
		case errors.As(err, &rej):
			return failed("broker id "+cfg.Broker.ID,
				sentence(fmt.Sprintf("The gateway refused the session (%s): %s", rej.Reject.Code, truncate(rej.Reject.Message, 200))),
				"Upgrade oxbroker to the version OX recommends.")
		case err != nil:
			return failed("broker id "+cfg.Broker.ID, sentence("The gateway did not answer the hello: "+trimPeriod(rootCause(err).Error())),
				"Run the check again; if it keeps failing while the checks above pass, report it to OX.")
		}
		ctrl.Close()
		return passed("broker %s accepted over %s (gateway %s)", cfg.Broker.ID, s.Transport(), ifEmpty(welcome.GatewayVersion, "version unknown"))
	})
	return c.results
}

func gatewayTLSTarget(g config.GatewayDial) tlsTarget {
	return tlsTarget{
		what:    "the gateway",
		caKey:   "gateway.ca_file",
		caFile:  g.CAFile,
		nameFix: "Set gateway.server_name to a name the certificate holds, or use such a name in gateway.address.",
		notTLS:  "Check gateway.address: it must be the tunnel address OX gave you.",
	}
}

func gatewayTLSProblem(err error, addr string, g config.GatewayDial) outcome {
	if o, ok := tlsProblem(err, addr, gatewayTLSTarget(g)); ok {
		return o
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return failed("TLS with "+addr, fmt.Sprintf("%s accepts TCP but did not complete a TLS handshake in time.", addr),
			"Check gateway.address: it must be the gateway's tunnel address, and no firewall or proxy may hold the connection.")
	}
	return failed("TLS with "+addr, sentence("The TLS handshake with the gateway failed: "+trimPeriod(rootCause(err).Error())),
		"Check gateway.address, and that no firewall or proxy in the way inspects TLS.")
}

// checkSite checks one site. p is the proxy the site's requests go
// through; nil builds one from site, as the agent does.
func checkSite(ctx context.Context, site config.Site, p *proxy.Proxy, log *slog.Logger) SiteReport {
	c := &chain{ctx: ctx}
	if site.CloudSite != "" {
		c.step("cloud_id", httpLimit, func(ctx context.Context) outcome {
			if site.URL != "" {
				return passed("resolved when the agent started or last reloaded: %s", site.URL)
			}
			return resolveCloudID(ctx, &site)
		})
	}

	var (
		u        *url.URL
		hostport string
		proxyURL *url.URL
		proxySrc string
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
		hostport = u.Host
		if u.Port() == "" {
			port := "443"
			if u.Scheme == "http" {
				port = "80"
			}
			hostport = net.JoinHostPort(u.Hostname(), port)
		}
		if proxyURL, proxySrc, err = siteProxy(site, u); err != nil {
			return failed(proxySrc, sentence(fmt.Sprintf("The proxy setting (%s) is not a valid URL", proxySrc)),
				"Set "+proxySrc+" to http://[user:password@]host:port.")
		}
		return checkDNS(ctx, u.Hostname(), proxyURL, "url")
	})

	c.step("tcp", dialLimit, func(ctx context.Context) outcome {
		switch {
		case proxyURL != nil && (proxyURL.Scheme == "http" || proxyURL.Scheme == "https") && u.Scheme == "https":
			var o outcome
			conn, o = proxyConnect(ctx, proxyURL, proxySrc, hostport, "url")
			return o
		case proxyURL != nil:
			// A SOCKS proxy, or plain http through an HTTP proxy: the
			// proxy connects to Jira per request; the credentials check
			// goes that way.
			paddr := proxyHostPort(proxyURL)
			var nd net.Dialer
			start := time.Now()
			pc, err := nd.DialContext(ctx, "tcp", paddr)
			if err != nil {
				return failed("proxy "+proxyURL.Redacted(), sentence("Cannot connect to the proxy: "+netProblem(err, paddr, time.Since(start))),
					"Check the proxy address in "+proxySrc+".")
			}
			pc.Close()
			return passed("connected to the proxy %s (from %s); it connects to %s for each request", proxyURL.Redacted(), settingName(proxySrc), hostport)
		}
		var nd net.Dialer
		start := time.Now()
		var err error
		if conn, err = nd.DialContext(ctx, "tcp", hostport); err != nil {
			return failed("connect to "+hostport, sentence(netProblem(err, hostport, time.Since(start))),
				"Check the url's host and port, and that the firewall lets this machine reach Jira (or set proxy if your network requires one).")
		}
		return passed("connected to %s", peer(hostport, conn))
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
		return checkSiteTLS(ctx, conn, site, u, hostport)
	})
	if conn != nil {
		conn.Close()
		conn = nil
	}

	var apiVersion string
	ownProxy := false
	c.step("credentials", httpLimit, func(ctx context.Context) outcome {
		if p == nil {
			var err error
			if p, err = proxy.New(site, proxy.Options{Logger: log}); err != nil {
				return failed("site config", sentence(err.Error()), "Correct the site's settings (oxbroker config validate shows problems).")
			}
			ownProxy = true
		}
		var o outcome
		apiVersion, o = checkCredentials(ctx, p, site, u)
		return o
	})
	c.step("permissions", httpLimit, func(ctx context.Context) outcome {
		return checkPermissions(ctx, p, site, apiVersion)
	})
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
// the running agent reads it (DiscoverCloudID).
func resolveCloudID(ctx context.Context, site *config.Site) outcome {
	id, err := DiscoverCloudID(ctx, *site)
	if err != nil {
		var dnsErr *net.DNSError
		cause := sentence(fmt.Sprintf("Cannot read the Cloud ID of %s: %s", site.CloudSite, trimPeriod(rootCause(err).Error())))
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			cause = fmt.Sprintf("No Jira Cloud site %s exists (DNS: no such host).", site.CloudSite)
		}
		return failed("cloud_site "+site.CloudSite, cause,
			"Check cloud_site: it is your Jira Cloud site's name, acme for https://acme.atlassian.net, and this machine must reach it.")
	}
	site.URL = cloudURL(*site, id)
	return passed("%s has Cloud ID %s; Jira is reached at %s", site.CloudSite, id, site.URL)
}

// siteProxy returns the proxy the site's transport uses for u, and the
// setting it comes from.
func siteProxy(site config.Site, u *url.URL) (*url.URL, string, error) {
	if site.Proxy != "" {
		pu, err := url.Parse(site.Proxy)
		return pu, "proxy", err
	}
	env := "HTTPS_PROXY"
	if u.Scheme == "http" {
		env = "HTTP_PROXY"
	}
	pu, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	return pu, env, err
}

// checkDNS resolves host. Through a proxy, the proxy resolves names, so
// a local failure is only a warning.
func checkDNS(ctx context.Context, host string, proxyURL *url.URL, key string) outcome {
	if ip := net.ParseIP(host); ip != nil {
		return skipped("%s is an IP address", host)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		cause := sentence(dnsProblem(err, host))
		if proxyURL != nil {
			return warned("lookup "+host, cause,
				"Nothing is required if the proxy reaches "+host+" (the tcp check tells); the proxy resolves names itself.")
		}
		return failed("lookup "+host, cause, fmt.Sprintf("Check the host name in %s and this machine's DNS settings (try: nslookup %s).", key, host))
	}
	if len(addrs) > 4 {
		addrs = append(addrs[:4], "…")
	}
	return passed("%s → %s", host, strings.Join(addrs, ", "))
}

func dnsProblem(err error, host string) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("DNS has no address for %s (no such host)", host)
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the DNS server did not answer for %s in time", host)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("DNS lookup of %s failed: %s", host, dnsErr.Err)
	}
	return fmt.Sprintf("DNS lookup of %s failed: %s", host, rootCause(err))
}

// netProblem says in words why connecting to addr failed.
func netProblem(err error, addr string, took time.Duration) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return dnsProblem(err, dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused: nothing listens on %s, or a firewall rejects the connection", addr)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Sprintf("no route to %s from this machine", addr)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("%s reset the connection (a firewall or proxy may be in the way)", addr)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("no answer from %s within %s: a firewall probably drops the traffic", addr, took.Round(100*time.Millisecond))
	case errors.Is(err, context.Canceled):
		return "the check was interrupted"
	}
	return fmt.Sprintf("connecting to %s failed: %s", addr, rootCause(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// proxyHostPort is the host:port of an HTTP proxy URL.
func proxyHostPort(pu *url.URL) string {
	if pu.Port() != "" {
		return pu.Host
	}
	switch pu.Scheme {
	case "https":
		return net.JoinHostPort(pu.Hostname(), "443")
	case "socks5", "socks5h":
		return net.JoinHostPort(pu.Hostname(), "1080")
	}
	return net.JoinHostPort(pu.Hostname(), "80")
}

// proxyConnect opens a TCP tunnel to target through the HTTP CONNECT
// proxy pu (from setting src), with Basic proxy authentication when pu
// holds user information, as tunnel's dialer and net/http's transport do.
// targetKey is the setting that names target.
func proxyConnect(ctx context.Context, pu *url.URL, src, target, targetKey string) (net.Conn, outcome) {
	paddr := proxyHostPort(pu)
	detail := fmt.Sprintf("through the proxy %s (from %s)", pu.Redacted(), settingName(src))
	var nd net.Dialer
	start := time.Now()
	conn, err := nd.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return nil, failed(detail, sentence("Cannot connect to the proxy: "+netProblem(err, paddr, time.Since(start))),
			"Check the proxy's host and port in "+src+".")
	}
	if pu.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, failed(detail, sentence("The TLS handshake with the proxy failed: "+trimPeriod(rootCause(err).Error())),
				"Check "+src+": most proxies are http://, not https://.")
		}
		conn = tc
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: make(http.Header)}
	if pu.User != nil {
		pass, _ := pu.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pass)))
	}
	var resp *http.Response
	br := bufio.NewReader(conn)
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		conn.Close()
		return nil, failed(detail, sentence(fmt.Sprintf("The proxy did not answer CONNECT %s: %s", target, netProblem(err, paddr, time.Since(start)))),
			"Check that "+src+" names an HTTP proxy.")
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		var cause, fix string
		switch {
		case resp.StatusCode == http.StatusProxyAuthRequired && pu.User == nil:
			cause = fmt.Sprintf("The proxy requires authentication (%s).", resp.Status)
			fix = "Set user:password in " + src + " (http://user:password@host:port)."
		case resp.StatusCode == http.StatusProxyAuthRequired:
			cause = fmt.Sprintf("The proxy refused our credentials (%s).", resp.Status)
			fix = "The proxy refused our credentials: set the right user:password in " + src + "."
		case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
			cause = fmt.Sprintf("The proxy could not reach %s (%s).", target, resp.Status)
			fix = "Check " + targetKey + ", and ask your network team whether the proxy may connect to " + target + "."
		default:
			cause = fmt.Sprintf("The proxy refused to open a tunnel to %s (%s).", target, resp.Status)
			fix = "Ask your network team to allow CONNECT to " + target + " through the proxy."
		}
		return nil, failed(detail, cause, fix)
	}
	if !stop() {
		conn.Close()
		return nil, failed(detail, "The check was interrupted.", "Run the check again.")
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		conn = &readerConn{Conn: conn, r: br}
	}
	return conn, passed("%s: CONNECT %s answered %s", detail, target, resp.Status)
}

// readerConn keeps bytes a proxy sent along with its CONNECT answer.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// checkSiteTLS runs the TLS handshake with Jira over conn, with the
// site's tls settings.
func checkSiteTLS(ctx context.Context, conn net.Conn, site config.Site, u *url.URL, hostport string) outcome {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if site.TLS.CAFile != "" {
		pem, err := os.ReadFile(site.TLS.CAFile)
		if err != nil {
			return failed("tls.ca_file", sentence(fmt.Sprintf("Cannot read tls.ca_file: %s", rootCause(err))),
				"Set tls.ca_file to a readable PEM file holding the CA that signed Jira's certificate.")
		}
		if !roots.AppendCertsFromPEM(pem) {
			return failed("tls.ca_file", fmt.Sprintf("tls.ca_file (%s) holds no PEM certificate.", site.TLS.CAFile),
				"Set tls.ca_file to a PEM file holding the CA that signed Jira's certificate.")
		}
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName:         u.Hostname(),
		RootCAs:            roots,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: site.TLS.InsecureSkipVerify, // #nosec G402 -- the operator's choice, reported as a warning
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		target := tlsTarget{
			what:    "Jira",
			caKey:   "tls.ca_file",
			caFile:  site.TLS.CAFile,
			nameFix: "Use in url a host name that Jira's certificate holds.",
			notTLS:  "Check url: if Jira serves plain HTTP on that port, the url starts with http://.",
		}
		if o, ok := tlsProblem(err, hostport, target); ok {
			return o
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return failed("TLS with "+hostport, fmt.Sprintf("%s accepts TCP but did not complete a TLS handshake in time.", hostport),
				"Check that url names Jira's HTTPS port, and that no firewall or proxy holds the connection.")
		}
		return failed("TLS with "+hostport, sentence("The TLS handshake with Jira failed: "+trimPeriod(rootCause(err).Error())),
			"Check that url names Jira's HTTPS port, and that no firewall or proxy in the way breaks TLS.")
	}
	st := tc.ConnectionState()
	summary := certSummary(st)
	if site.TLS.InsecureSkipVerify {
		verdict := "the certificate would also pass verification"
		if _, err := verifyPeer(st, roots, u.Hostname()); err != nil {
			verdict = "the certificate would fail verification: " + trimPeriod(rootCause(err).Error())
		}
		return warned(fmt.Sprintf("verification off (insecure_skip_verify); %s; %s", summary, verdict),
			"tls.insecure_skip_verify is on, so the agent accepts any certificate for Jira and a machine in the path could read the Jira token.",
			"Set tls.ca_file to the CA that signed Jira's certificate and remove insecure_skip_verify.")
	}
	leaf := st.PeerCertificates[0]
	if left := time.Until(leaf.NotAfter); left < 14*24*time.Hour {
		return warned(summary, fmt.Sprintf("Jira's certificate expires on %s.", leaf.NotAfter.Format(time.DateOnly)),
			"Renew Jira's certificate before then.")
	}
	return passed("%s, verified (system roots%s)", summary, ifSet(site.TLS.CAFile, " + tls.ca_file "+site.TLS.CAFile))
}

func verifyPeer(st tls.ConnectionState, roots *x509.CertPool, name string) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	return st.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name})
}

// tlsTarget words TLS failures for the gateway or a Jira site.
type tlsTarget struct {
	what    string // "the gateway", "Jira"
	caKey   string // the CA setting
	caFile  string // its value
	nameFix string
	notTLS  string
}

// tlsProblem explains a failed TLS handshake with addr; ok is false for
// failures that are not about TLS.
func tlsProblem(err error, addr string, t tlsTarget) (o outcome, ok bool) {
	caFix := fmt.Sprintf("Set %s to the CA that signed %s certificate.", t.caKey, possessive(t.what))
	if t.caFile != "" {
		caFix = fmt.Sprintf("Check that %s (%s) holds the CA that signed %s certificate.", t.caKey, t.caFile, possessive(t.what))
	}
	whose := possessive(t.what)
	detail := "TLS with " + addr
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		issuer := "unknown"
		if unknown.Cert != nil {
			issuer = unknown.Cert.Issuer.String()
		}
		return failed(detail, sentence(fmt.Sprintf("%s certificate at %s is signed by an unknown authority (issuer %q)", whose, addr, issuer)), caFix), true
	case errors.As(err, &hostname):
		return failed(detail, sentence(fmt.Sprintf("%s certificate is not valid for %s: it names %s", whose, hostname.Host, certNames(hostname.Certificate))), t.nameFix), true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		span := ""
		if invalid.Cert != nil {
			span = fmt.Sprintf(" (valid %s to %s)", invalid.Cert.NotBefore.Format(time.DateOnly), invalid.Cert.NotAfter.Format(time.DateOnly))
		}
		return failed(detail, sentence(fmt.Sprintf("%s certificate at %s has expired or is not yet valid%s", whose, addr, span)),
			"Have the certificate renewed, or correct this machine's clock if it is wrong."), true
	case errors.As(err, &invalid):
		return failed(detail, sentence(fmt.Sprintf("%s certificate at %s is invalid: %s", whose, addr, trimPeriod(invalid.Error()))), caFix), true
	case errors.As(err, &record):
		return failed(detail, sentence(fmt.Sprintf("%s at %s did not answer with TLS", t.what, addr)), t.notTLS), true
	case errors.As(err, &alert):
		return failed(detail, sentence(fmt.Sprintf("%s at %s ended the TLS handshake: %s", t.what, addr, alert)), t.notTLS), true
	}
	return outcome{}, false
}

// certSummary describes the peer's certificate for a Detail.
func certSummary(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return tls.VersionName(st.Version)
	}
	c := st.PeerCertificates[0]
	issuer := c.Issuer.CommonName
	if issuer == "" {
		issuer = c.Issuer.String()
	}
	return fmt.Sprintf("%s, certificate for %s issued by %q, valid until %s", tls.VersionName(st.Version),
		certNames(c), issuer, c.NotAfter.Format(time.DateOnly))
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no name"
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) > 4 {
		names = append(names[:4], "…")
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}

// Paths of the Jira checks; {v} is the REST API version.
const (
	myselfPath      = "/rest/api/%s/myself"
	permissionsPath = "/rest/api/%s/mypermissions?permissions=BROWSE_PROJECTS,CREATE_ISSUES"
)

// callJira sends GET path through the site's proxy exactly as a request
// from the tunnel arrives: origin-form target, a request id, no
// credentials (the proxy adds them).
func callJira(ctx context.Context, p *proxy.Proxy, path string) *http.Response {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil { // not reached: the paths are constants
		panic(err)
	}
	req.RequestURI = path
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "oxbroker-check")
	id, _ := ctx.Value(checkIDKey{}).(string)
	req.Header.Set(brokerhttp.HeaderRequestID, ifEmpty(id, "check")+"-"+randomHex(4))
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	return rec.Result()
}

// brokerError returns the broker's own error in resp, if it is one.
func brokerError(resp *http.Response) (brokerhttp.Code, string) {
	code := brokerhttp.Code(resp.Header.Get(brokerhttp.HeaderError))
	if code == "" {
		return "", ""
	}
	var body brokerhttp.Body
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	return code, body.Error.Message
}

// brokerErrorOutcome words a broker error answered to a Jira check.
func brokerErrorOutcome(detail string, code brokerhttp.Code, msg string, site config.Site) outcome {
	cause := sentence(fmt.Sprintf("%s (%s)", trimPeriod(msg), code))
	switch code {
	case brokerhttp.UpstreamTLS:
		fix := "Set tls.ca_file to the CA that signed Jira's certificate."
		if site.TLS.CAFile != "" {
			fix = "Check that tls.ca_file (" + site.TLS.CAFile + ") holds the CA that signed Jira's certificate."
		}
		return failed(detail, cause, fix)
	case brokerhttp.UpstreamUnreachable:
		return failed(detail, cause, "Check the url's host name, DNS, and the firewall or proxy between this machine and Jira.")
	case brokerhttp.UpstreamTimeout:
		return failed(detail, cause, "Check that Jira is up and that the firewall or proxy lets this machine reach it.")
	case brokerhttp.PathNotAllowed:
		return failed(detail, cause, "Allow getCurrentUser (scope read:jira-user) in the site's allow: section.")
	}
	return failed(detail, cause, "Run the check again; if it keeps failing, report it to OX with this output.")
}

// checkCredentials calls myself with the site's credentials and says who
// the token is. It returns the REST API version that answered.
func checkCredentials(ctx context.Context, p *proxy.Proxy, site config.Site, u *url.URL) (string, outcome) {
	version := "3"
	path := fmt.Sprintf(myselfPath, version)
	resp := callJira(ctx, p, path)
	if resp.StatusCode == http.StatusNotFound && resp.Header.Get(brokerhttp.HeaderError) == "" {
		// Jira Data Center before REST API 3.
		version = "2"
		path = fmt.Sprintf(myselfPath, version)
		resp = callJira(ctx, p, path)
	}
	detail := "GET " + path
	if code, msg := brokerError(resp); code != "" {
		return version, brokerErrorOutcome(detail, code, msg, site)
	}
	jiraMsg := jiraMessage(resp)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		cause := "Jira refused the token (401 Unauthorized)."
		if reason := resp.Header.Get("X-Seraph-LoginReason"); strings.Contains(reason, "AUTHENTICATION_DENIED") {
			return version, failed(detail, "Jira locked the account after failed logins (it asks for a CAPTCHA).",
				"Log in to Jira once in a browser as this account to clear the CAPTCHA, then check auth.token.")
		}
		return version, failed(detail, cause, unauthorizedFix(site, u))
	case http.StatusForbidden:
		return version, failed(detail, sentence("Jira refused the account access (403 Forbidden"+ifSet(jiraMsg, ": "+jiraMsg)+")"),
			"Give the account access to Jira: the Jira User role for a service account (Atlassian Admin > Directory > Service accounts), or a Jira licence for a person.")
	case http.StatusTooManyRequests:
		return version, warned(detail, "Jira is rate-limiting this account (429 Too Many Requests).",
			"Run the check again after a while ("+ifEmpty(resp.Header.Get("Retry-After"), "?")+" seconds).")
	case http.StatusNotFound:
		return version, failed(detail, fmt.Sprintf("No Jira REST API at %s (404 Not Found on versions 3 and 2).", site.URL),
			"Set url to the Jira base URL: https://jira.example.com for Data Center, https://api.atlassian.com/ex/jira/<cloudId> for a service account.")
	default:
		return version, failed(detail, sentence(fmt.Sprintf("Jira answered %s%s", resp.Status, ifSet(jiraMsg, ": "+jiraMsg))),
			"Check that url is the Jira base URL and that Jira is healthy, then run the check again.")
	}

	var me struct {
		DisplayName  string `json:"displayName"`
		Name         string `json:"name"`
		EmailAddress string `json:"emailAddress"`
		AccountType  string `json:"accountType"`
		Active       *bool  `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&me); err != nil {
		return version, failed(detail, "The answer to myself is not Jira's JSON, so url probably points at another web server.",
			"Set url to the Jira base URL (for a service account: https://api.atlassian.com/ex/jira/<cloudId>).")
	}
	who := fmt.Sprintf("%q", ifEmpty(me.DisplayName, me.Name))
	switch me.AccountType {
	case "app":
		who += " (service account)"
	case "atlassian":
		who += " (Atlassian user account" + ifSet(me.EmailAddress, " "+me.EmailAddress) + ")"
	case "":
		if me.Name != "" {
			who += " (user " + me.Name + ")"
		}
	default:
		who += " (account type " + me.AccountType + ")"
	}
	detail = fmt.Sprintf("the token is %s, via REST API %s", who, version)
	if me.Active != nil && !*me.Active {
		return version, failed(detail, "Jira says the account is deactivated.", "Reactivate the account in Jira or Atlassian Admin, or use another account's token.")
	}
	if exp := site.Auth.Expires; !exp.IsZero() {
		switch left := time.Until(exp.Time); {
		case left <= 0:
			return version, warned(detail, fmt.Sprintf("auth.expires says the token expired on %s.", exp),
				"Create a new token, update auth.token and auth.expires.")
		case left < expiryWarning:
			return version, warned(detail, fmt.Sprintf("The token expires on %s (auth.expires), in %d days.", exp, int(left.Hours()/24)),
				"Create a new token before then and update auth.token and auth.expires.")
		}
	}
	return version, passed("%s", detail)
}

// unauthorizedFix says what to do about a refused Jira token.
func unauthorizedFix(site config.Site, u *url.URL) string {
	host := ""
	if u != nil {
		host = strings.ToLower(u.Hostname())
	}
	switch site.Auth.Type {
	case config.AuthServiceAccount:
		if strings.HasSuffix(host, ".atlassian.net") {
			return "Service-account tokens work only through https://api.atlassian.com/ex/jira/<cloudId>: set url to that, or use cloud_site."
		}
		return "Check auth.token: create a new API token for the service account in Atlassian Admin (Directory > Service accounts) with scopes read:jira-user, read:jira-work and write:jira-work."
	case config.AuthBasic:
		return "Check auth.token and auth.email: basic needs the Atlassian account's email and an API token made at id.atlassian.com."
	default:
		return "Check auth.token: bearer needs a Jira personal access token, made in Jira under Profile > Personal Access Tokens."
	}
}

// checkPermissions asks Jira whether the account may browse projects and
// create issues in at least one project.
func checkPermissions(ctx context.Context, p *proxy.Proxy, site config.Site, version string) outcome {
	if version == "" {
		version = "3"
	}
	path := fmt.Sprintf(permissionsPath, version)
	detail := "GET " + path
	resp := callJira(ctx, p, path)
	if code, msg := brokerError(resp); code != "" {
		if code == brokerhttp.PathNotAllowed {
			return warned("not checked: the site's allowlist refuses GET "+fmt.Sprintf("/rest/api/%s/mypermissions", version),
				sentence("Permissions could not be checked because this site's allowlist refuses mypermissions: "+trimPeriod(msg)),
				"Allow getMyPermissions (scope read:jira-work) in the site's allow: section, or check the account's project permissions in Jira by hand.")
		}
		o := brokerErrorOutcome(detail, code, msg, site)
		o.status = StatusWarn
		return o
	}
	if resp.StatusCode != http.StatusOK {
		return warned(detail, sentence(fmt.Sprintf("Jira answered %s, so permissions could not be checked", resp.Status)),
			"Check the account's project permissions in Jira by hand.")
	}
	var perms struct {
		Permissions map[string]struct {
			HavePermission bool `json:"havePermission"`
		} `json:"permissions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&perms); err != nil || perms.Permissions == nil {
		return warned(detail, "Jira's answer to mypermissions is not the expected JSON.", "Check the account's project permissions in Jira by hand.")
	}
	var have, missing []string
	for _, k := range []string{"BROWSE_PROJECTS", "CREATE_ISSUES"} {
		if perms.Permissions[k].HavePermission {
			have = append(have, k)
		} else {
			missing = append(missing, k)
		}
	}
	const fix = "Give the account the Jira User role, and Browse Projects and Create Issues in the projects OX should use (Project settings > Permissions)."
	switch {
	case len(missing) == 0:
		return passed("%s granted (in at least one project)", strings.Join(have, ", "))
	case slices.Contains(missing, "BROWSE_PROJECTS"):
		return failed("missing "+strings.Join(missing, ", "), "The account may not browse any project, so OX can neither read nor create issues.", fix)
	default:
		return warned("missing "+strings.Join(missing, ", "), "The account may browse projects but create issues in none, so OX cannot open tickets.", fix)
	}
}

// jiraMessage returns the first error message of a Jira error body,
// short. The proxy removed the credential from it; so does
// scrubResults.
func jiraMessage(resp *http.Response) string {
	if resp.StatusCode < 300 {
		return ""
	}
	var body struct {
		ErrorMessages []string `json:"errorMessages"`
		Message       string   `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil {
		return ""
	}
	msg := body.Message
	if len(body.ErrorMessages) > 0 {
		msg = body.ErrorMessages[0]
	}
	return truncate(trimPeriod(strings.TrimSpace(msg)), 160)
}

// readAgentID returns the agent id in state_dir, or "" when there is none
// yet; a check does not create it.
func readAgentID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "agent-id"))
	if id := strings.TrimSpace(string(b)); err == nil && agentIDPattern.MatchString(id) {
		return id
	}
	return ""
}

// peer names the address connected to, with the IP when addr is a name.
func peer(addr string, c net.Conn) string {
	ra := c.RemoteAddr().String()
	if ra == addr {
		return addr
	}
	return addr + " (" + ra + ")"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rootCause returns the innermost error of err's chain: the short cause
// ("connection refused") rather than the whole story.
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// sentence makes s start with a capital letter, unless it starts with a
// config key such as tls.ca_file, and end with a period.
func sentence(s string) string {
	s = trimPeriod(strings.TrimSpace(s))
	if s == "" {
		return s
	}
	first, _, _ := strings.Cut(s, " ")
	if strings.ContainsAny(first, "._") {
		return s + "."
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// settingName names a proxy setting in a Detail.
func settingName(src string) string {
	if src == "proxy" {
		return "the site's proxy setting"
	}
	return src
}

func trimPeriod(s string) string { return strings.TrimRight(s, ". ") }

func possessive(s string) string { return s + "'s" }

func ifSet(v, s string) string {
	if v == "" {
		return ""
	}
	return s
}

func ifEmpty(v, alt string) string {
	if v == "" {
		return alt
	}
	return v
}
