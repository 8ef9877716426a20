package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

var (
	hashRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hostRE   = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	exJiraRE = regexp.MustCompile(`^/ex/jira/[^/]+/?$`)
)

const (
	nameRule = "must be 1 to 63 lowercase letters, digits or dashes, starting with a letter or digit"
	hashRule = "must be sha256:<64 lowercase hex digits>; make one with oxbroker-gateway token"
	// atlassianNetRule is for a service-account token aimed at
	// <site>.atlassian.net, which refuses it: those tokens work only
	// through the Atlassian API gateway.
	atlassianNetRule = "service-account tokens work only through https://api.atlassian.com/ex/jira/<cloudId>; " +
		"set url to that (find the Cloud ID at https://%s/_edge/tenant_info) or use cloud_site"
)

// httpMethods are the methods allow.rules may name.
var httpMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// Validate reports every problem in the agent config as an Errors value.
// It changes nothing: defaults are filled in by LoadAgent and ParseAgent.
func (a *Agent) Validate() error {
	var errs Errors
	errs.check("broker.id", required(a.Broker.ID, validName))
	if a.Broker.Token.IsZero() && a.Broker.TokenFile == "" {
		errs.add("broker.token", "required (set token or token_file)")
	}
	errs.check("state_dir", required(a.StateDir, anyValue))

	g := a.Gateway
	errs.check("gateway.address", required(g.Address, dialAddr))
	for i, addr := range g.Addresses {
		errs.check(index("gateway.addresses", i), required(addr, dialAddr))
	}
	errs.check("gateway.transport", oneOf(g.Transport, TransportAuto, TransportQUIC, TransportTCP))
	if g.Connections < 1 || g.Connections > 16 {
		errs.add("gateway.connections", "must be from 1 to 16")
	}
	errs.check("gateway.proxy", optional(g.Proxy, httpURL))

	if len(a.Sites) == 0 {
		errs.add("sites", "at least one site is required")
	}
	uniqueNames(&errs, "sites", "name", a.Sites, func(s Site) string { return s.Name })
	for i, s := range a.Sites {
		s.validate(&errs, index("sites", i))
	}

	errs.check("admin.listen", optional(a.Admin.Listen, listenAddr))
	a.Admin.PageAccess().validate(&errs, "admin", "admin.listen", a.Admin.Listen)
	a.Log.validate(&errs)
	return merge(reflect.TypeFor[Agent](), nil, errs).orErrNil()
}

func (s *Site) validate(errs *Errors, p string) {
	errs.check(p+".type", oneOf(s.Type, "jira"))
	switch {
	case s.URL == "" && s.CloudSite == "":
		errs.add(p+".url", "required (or set cloud_site)")
	case s.URL != "" && s.CloudSite != "":
		errs.add(p+".cloud_site", "set either url or cloud_site, not both")
	case s.URL != "":
		errs.check(p+".url", siteURL(s.URL, s.Auth.Type))
	default:
		errs.check(p+".cloud_site", cloudSite(s.CloudSite))
	}
	if s.CloudSite != "" {
		errs.check(p+".atlassian_api", required(s.AtlassianAPI, httpURL))
	} else {
		errs.check(p+".atlassian_api", optional(s.AtlassianAPI, httpURL))
	}

	auth := s.Auth
	errs.check(p+".auth.type", oneOf(auth.Type, AuthServiceAccount, AuthBasic, AuthBearer))
	if auth.Token.IsZero() && auth.TokenFile == "" {
		errs.add(p+".auth.token", "required (set token or token_file)")
	}
	switch {
	case auth.Type == AuthBasic && auth.Email == "":
		errs.add(p+".auth.email", "required for auth type basic")
	case (auth.Type == AuthServiceAccount || auth.Type == AuthBearer) && auth.Email != "":
		errs.add(p+".auth.email", "only used with auth type basic")
	}

	errs.check(p+".proxy", optional(s.Proxy, httpURL))

	if len(s.Allow.Scopes) == 0 {
		errs.add(p+".allow.scopes", "must not be empty")
	}
	for i, r := range s.Allow.Rules {
		rp := index(p+".allow.rules", i)
		if len(r.Methods) == 0 {
			errs.add(rp+".methods", "required")
		}
		for j, m := range r.Methods {
			errs.check(index(rp+".methods", j), oneOf(m, httpMethods...))
		}
		if !strings.HasPrefix(r.Path, "/") {
			errs.add(rp+".path", "must start with /")
		}
	}

	for i, h := range s.Allow.Headers {
		if msg := CheckForwardHeader(h); msg != "" && h != "" {
			errs.add(index(p+".allow.headers", i), strconv.Quote(h)+" "+msg)
		} else {
			errs.check(index(p+".allow.headers", i), msg)
		}
	}

	if s.Timeout <= 0 {
		errs.add(p+".timeout", "must be greater than 0")
	}
	if s.MaxConcurrent < 1 || s.MaxConcurrent > 10000 {
		errs.add(p+".max_concurrent", "must be from 1 to 10000")
	}
	if s.MaxBody <= 0 {
		errs.add(p+".max_body", "must be greater than 0")
	}
}

// Validate reports every problem in the gateway config as an Errors value.
// It changes nothing: defaults are filled in by LoadGateway and
// ParseGateway.
func (g *Gateway) Validate() error {
	var errs Errors
	errs.check("listen.tunnel", required(g.Listen.Tunnel, listenAddr))
	errs.check("listen.api", required(g.Listen.API, listenAddr))
	errs.check("listen.admin", optional(g.Listen.Admin, listenAddr))
	redis := g.Registry.Type == RegistryRedis
	if redis {
		errs.check("listen.internal", required(g.Listen.Internal, listenAddr))
	} else {
		errs.check("listen.internal", optional(g.Listen.Internal, listenAddr))
	}

	errs.check("tls.cert_file", required(g.TLS.CertFile, anyValue))
	errs.check("tls.key_file", required(g.TLS.KeyFile, anyValue))
	errs.check("public_url", optional(g.PublicURL, publicURL))
	for i, p := range g.TrustedProxies {
		errs.check(index("trusted_proxies", i), required(p, cidr))
	}

	if len(g.Brokers) == 0 {
		errs.add("brokers", "at least one broker is required")
	}
	uniqueNames(&errs, "brokers", "id", g.Brokers, func(b BrokerEntry) string { return b.ID })
	for i, b := range g.Brokers {
		p := index("brokers", i)
		errs.check(p+".token", required(b.Token, tokenHash))
		for j, t := range b.ConnectorTokens {
			errs.check(index(p+".connector_tokens", j), required(t, tokenHash))
		}
	}

	errs.check("registry.type", oneOf(g.Registry.Type, RegistryMemory, RegistryRedis))
	if redis {
		errs.check("registry.url", required(g.Registry.URL, redisURL))
		// The internal listener speaks plain HTTP; requests between
		// replicas are authenticated with the cluster secret.
		errs.check("registry.advertise", required(g.Registry.Advertise, internalURL))
		errs.check("cluster.secret_file", required(g.Cluster.SecretFile, anyValue))
	}
	errs.check("limits.unauthenticated_sessions", limit(g.Limits.UnauthenticatedSessions, 65536))
	errs.check("limits.sessions_per_broker", limit(g.Limits.SessionsPerBroker, 10000))
	errs.check("limits.sites_per_broker", limit(g.Limits.SitesPerBroker, 100000))
	g.Admin.validate(&errs, "admin", "listen.admin", g.Listen.Admin)
	g.Log.validate(&errs)
	return merge(reflect.TypeFor[Gateway](), nil, errs).orErrNil()
}

func (l Log) validate(errs *Errors) {
	errs.check("log.level", oneOf(l.Level, "debug", "info", "warn", "error"))
	errs.check("log.format", oneOf(l.Format, "text", "json"))
}

// limit checks a value of limits: 0 (the default) or from 1 to hi.
func limit(n, hi int) string {
	if n < 0 || n > hi {
		return fmt.Sprintf("must be from 1 to %d (0: the default)", hi)
	}
	return ""
}

// check adds a problem when msg is not empty. The checks below return ""
// for a good value and a message otherwise.
func (e *Errors) check(path, msg string) {
	if msg != "" {
		e.add(path, msg)
	}
}

// uniqueNames checks the name of each entry of list, at list[i].field:
// required, valid, and not the name of an earlier entry, which the
// problem names.
func uniqueNames[T any](errs *Errors, list, field string, entries []T, name func(T) string) {
	first := map[string]int{} // name -> index of its first use
	for i, e := range entries {
		n, p := name(e), index(list, i)+"."+field
		if msg := required(n, validName); msg != "" {
			errs.add(p, msg)
		} else if j, dup := first[n]; dup {
			errs.add(p, "duplicate of "+index(list, j))
		} else {
			first[n] = i
		}
	}
}

func required(v string, check func(string) string) string {
	if v == "" {
		return "required"
	}
	return check(v)
}

func optional(v string, check func(string) string) string {
	if v == "" {
		return ""
	}
	return check(v)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// anyValue accepts any value; required(v, anyValue) only asks for one.
func anyValue(string) string { return "" }

func validName(s string) string {
	if !brokerhttp.ValidName(s) {
		return nameRule
	}
	return ""
}

func oneOf(v string, allowed ...string) string {
	if slices.Contains(allowed, v) {
		return ""
	}
	if len(allowed) == 1 {
		return "must be " + allowed[0]
	}
	return "must be one of " + strings.Join(allowed, ", ")
}

func tokenHash(s string) string {
	if !hashRE.MatchString(s) {
		return hashRule
	}
	return ""
}

// dialAddr checks an address to connect to: a host and a port.
func dialAddr(s string) string { return hostPort(s, true, 1) }

// listenAddr checks an address to listen on: the host may be empty (all
// interfaces) and port 0 picks a free port, which tests use.
func listenAddr(s string) string { return hostPort(s, false, 0) }

func hostPort(s string, needHost bool, minPort uint64) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil || needHost && host == "" || strings.ContainsAny(host, " /") {
		return "must be host:port"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n < minPort {
		return fmt.Sprintf("port must be a number from %d to 65535", minPort)
	}
	return ""
}

func httpURL(s string) string { return absURL(s, "http", "https") }

func redisURL(s string) string { return absURL(s, "redis", "rediss") }

// publicURL checks public_url, which the agents write into Jira's
// answers; a trailing "/" is allowed here and dropped where it is used.
func publicURL(s string) string {
	if err := brokerhttp.CheckPublicBase(strings.TrimRight(s, "/")); err != nil {
		return err.Error()
	}
	return ""
}

// cidr checks an entry of trusted_proxies: an IP address or a CIDR.
func cidr(s string) string {
	if _, err := netip.ParsePrefix(s); err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	return "must be an IP address or a CIDR such as 10.0.0.0/8"
}

// internalURL checks registry.advertise: how other replicas reach this
// one's internal listener, as http://host:port.
func internalURL(s string) string {
	if msg := absURL(s, "http"); msg != "" {
		return msg
	}
	if u, _ := url.Parse(s); u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "must be http://host:port, without a path, query or credentials"
	}
	return ""
}

// absURL checks an absolute URL with one of the given schemes and a host.
// Its messages never quote the URL, which may hold a password.
func absURL(s string, schemes ...string) string {
	u, err := url.Parse(s)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Hostname() == "" {
		return "must be an absolute " + strings.Join(schemes, " or ") + " URL"
	}
	return ""
}

// siteURL checks a Jira base URL, for the auth type the site uses.
func siteURL(s, authType string) string {
	if msg := httpURL(s); msg != "" {
		return msg
	}
	u, _ := url.Parse(s)
	switch {
	case u.User != nil:
		return "must not hold credentials; set them under auth"
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#"):
		return "must not have a query or fragment"
	}
	if authType != AuthServiceAccount {
		return ""
	}
	if host := strings.ToLower(u.Hostname()); strings.HasSuffix(host, ".atlassian.net") {
		return fmt.Sprintf(atlassianNetRule, host)
	}
	if !exJiraRE.MatchString(u.Path) {
		return "service-account tokens need a URL of the form https://api.atlassian.com/ex/jira/<cloudId>, or use cloud_site"
	}
	return ""
}

// cloudSite checks the forms the agent can turn into the site whose
// /_edge/tenant_info it reads: "acme", "acme.atlassian.net", or a URL with
// nothing but a scheme and host ("https://acme.atlassian.net"; tests and
// private clouds use other hosts).
func cloudSite(s string) string {
	const msg = "must be a site such as acme, acme.atlassian.net or https://acme.atlassian.net"
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return msg
		}
		return ""
	}
	if !hostRE.MatchString(strings.TrimSuffix(s, "/")) {
		return msg
	}
	return ""
}
