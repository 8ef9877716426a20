package diag

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/hostport"
	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// Words is a failure in a person's words: one sentence for what went
// wrong, one for what to do.
type Words struct {
	Cause string
	Fix   string
	// Lasting is true for a failure that retrying cannot mend: only a
	// change of a setting, a file or the server's side can (an unknown
	// CA, a refused token, a name DNS does not know). The agent logs such
	// a failure as an error, once and then at most every few minutes,
	// rather than a warning at each retry.
	Lasting bool
}

// Target is a server the agent reaches — the gateway or a site's Jira —
// with the settings that change how, so that the words of a failure name
// the setting to change. GatewayTarget and SiteTarget make one.
type Target struct {
	// Addr is the host:port reached.
	Addr string
	// ProxyKey is where an HTTP proxy on the way would come from:
	// gateway.proxy or proxy when set, else HTTPS_PROXY (or HTTP_PROXY
	// for an http:// site).
	ProxyKey string

	what    string // "the gateway", "Jira"
	host    string // Addr's host
	addrKey string // the setting that names Addr
	caKey   string // the setting of the CA file, and its value
	caFile  string

	connectFix   string // no TCP connection
	nameFix      string // the certificate does not hold the name
	notTLSFix    string // the server does not speak TLS
	slowTLSFix   string // the handshake did not finish in time
	handshakeFix string // any other handshake failure
}

// GatewayTarget is the gateway at addr, one of gateway.address or
// gateway.addresses.
func GatewayTarget(g config.GatewayDial, addr string) Target {
	host, _, _ := net.SplitHostPort(addr)
	proxyKey := "HTTPS_PROXY"
	if g.Proxy != "" {
		proxyKey = "gateway.proxy"
	}
	return Target{
		Addr:         addr,
		ProxyKey:     proxyKey,
		what:         "the gateway",
		host:         host,
		addrKey:      "gateway.address",
		caKey:        "gateway.ca_file",
		caFile:       g.CAFile,
		connectFix:   "Check gateway.address (the host:port OX gave you) and that the firewall allows outbound TCP to it.",
		nameFix:      "Set gateway.server_name to a name the certificate holds, or use such a name in gateway.address.",
		notTLSFix:    "Check gateway.address: it must be the tunnel address OX gave you.",
		slowTLSFix:   "Check gateway.address: it must be the gateway's tunnel address, and no firewall or proxy may hold the connection.",
		handshakeFix: "Check gateway.address, and that no firewall or proxy in the way inspects TLS.",
	}
}

// SiteTarget is the Jira of site, at u (the site's url, or the one its
// cloud_site resolved to).
func SiteTarget(site config.Site, u *url.URL) Target {
	proxyKey := "HTTPS_PROXY"
	switch {
	case site.Proxy != "":
		proxyKey = "proxy"
	case u.Scheme == "http":
		proxyKey = "HTTP_PROXY"
	}
	return Target{
		Addr:         hostport.Of(u),
		ProxyKey:     proxyKey,
		what:         "Jira",
		host:         u.Hostname(),
		addrKey:      "url",
		caKey:        "tls.ca_file",
		caFile:       site.TLS.CAFile,
		connectFix:   "Check the url's host and port, and that the firewall lets this machine reach Jira (or set proxy if your network requires one).",
		nameFix:      "Use in url a host name that Jira's certificate holds.",
		notTLSFix:    "Check url: if Jira serves plain HTTP on that port, the url starts with http://.",
		slowTLSFix:   "Check that url names Jira's HTTPS port, and that no firewall or proxy holds the connection.",
		handshakeFix: "Check that url names Jira's HTTPS port, and that no firewall or proxy in the way breaks TLS.",
	}
}

// Explain words err, a failure to reach t — its name, a connection to it
// or through its proxy (took is how long that took), or the TLS handshake
// — as `oxbroker check` words it, for the agent's log.
func (t Target) Explain(err error, took time.Duration) Words {
	var pe *tunnel.ProxyError
	if errors.As(err, &pe) {
		return t.Connect(err, took)
	}
	switch f := netfail.Classify(err); {
	case f.Kind.TLS():
		return t.Handshake(err)
	case f.Kind.DNS():
		return t.Resolve(err)
	}
	return t.Connect(err, took)
}

// Resolve words a failed DNS lookup of t's host.
func (t Target) Resolve(err error) Words {
	f := netfail.Classify(err)
	return Words{
		Cause:   sentence(dnsCause(f, t.host)),
		Fix:     fmt.Sprintf("Check the host name in %s and this machine's DNS settings (try: nslookup %s).", t.addrKey, t.host),
		Lasting: f.Kind == netfail.NoSuchHost,
	}
}

// Connect words a TCP connection to t that failed after took, directly or
// through its HTTP proxy (a *tunnel.ProxyError).
func (t Target) Connect(err error, took time.Duration) Words {
	var pe *tunnel.ProxyError
	if errors.As(err, &pe) {
		return t.proxyFailure(pe, took)
	}
	return Words{sentence(netCause(netfail.Classify(err), t.Addr, took)), t.connectFix, false}
}

// proxyFailure words a failure of the HTTP proxy on the way to t.
func (t Target) proxyFailure(pe *tunnel.ProxyError, took time.Duration) Words {
	src := t.ProxyKey
	switch pe.Step {
	case tunnel.ProxyConnect:
		return Words{sentence("Cannot connect to the proxy: " + netCause(netfail.Classify(pe.Err), pe.ProxyAddr, took)),
			"Check the proxy's host and port in " + src + ".", false}
	case tunnel.ProxyTLS:
		return Words{sentence("The TLS handshake with the proxy failed: " + trimPeriod(netfail.RootCause(pe.Err).Error())),
			"Check " + src + ": most proxies are http://, not https://.", true}
	case tunnel.ProxyWrite, tunnel.ProxyRead:
		return Words{sentence(fmt.Sprintf("The proxy did not answer CONNECT %s: %s", pe.Addr, netCause(netfail.Classify(pe.Err), pe.ProxyAddr, took))),
			"Check that " + src + " names an HTTP proxy.", false}
	}
	switch {
	case pe.AuthRequired() && !pe.Credentials:
		return Words{fmt.Sprintf("The proxy requires authentication (%s).", pe.Status),
			"Set user:password in " + src + " (http://user:password@host:port).", true}
	case pe.AuthRequired():
		return Words{fmt.Sprintf("The proxy refused our credentials (%s).", pe.Status),
			"The proxy refused our credentials: set the right user:password in " + src + ".", true}
	case pe.StatusCode == http.StatusBadGateway, pe.StatusCode == http.StatusServiceUnavailable, pe.StatusCode == http.StatusGatewayTimeout:
		return Words{fmt.Sprintf("The proxy could not reach %s (%s).", pe.Addr, pe.Status),
			"Check " + t.addrKey + ", and ask your network team whether the proxy may connect to " + pe.Addr + ".", false}
	}
	return Words{fmt.Sprintf("The proxy refused to open a tunnel to %s (%s).", pe.Addr, pe.Status),
		"Ask your network team to allow CONNECT to " + pe.Addr + " through the proxy.", true}
}

// Handshake words a failed TLS handshake with t.
func (t Target) Handshake(err error) Words {
	f := netfail.Classify(err)
	if w, ok := t.certificate(f); ok {
		return w
	}
	if f.Kind.TimedOut() {
		return Words{fmt.Sprintf("%s accepts TCP but did not complete a TLS handshake in time.", t.Addr), t.slowTLSFix, false}
	}
	return Words{sentence("The TLS handshake with " + t.what + " failed: " + trimPeriod(f.Reason)), t.handshakeFix, false}
}

// certificate words the TLS failures that say what is wrong with t's
// certificate or with t's answer; ok is false for the others. Each lasts
// until the certificate, the CA file or the address changes.
func (t Target) certificate(f netfail.Failure) (Words, bool) {
	w, ok := t.certificateWords(f)
	w.Lasting = ok
	return w, ok
}

func (t Target) certificateWords(f netfail.Failure) (w Words, ok bool) {
	whose := t.what + "'s"
	caFix := fmt.Sprintf("Set %s to the CA that signed %s certificate.", t.caKey, whose)
	if t.caFile != "" {
		caFix = fmt.Sprintf("Check that %s (%s) holds the CA that signed %s certificate.", t.caKey, t.caFile, whose)
	}
	switch f.Kind {
	case netfail.UnknownAuthority:
		issuer := "unknown"
		if f.Cert != nil {
			issuer = f.Cert.Issuer.String()
		}
		return Words{sentence(fmt.Sprintf("%s certificate at %s is signed by an unknown authority (issuer %q)", whose, t.Addr, issuer)), caFix, false}, true
	case netfail.WrongName:
		return Words{sentence(fmt.Sprintf("%s certificate is not valid for %s: it names %s", whose, f.Host, certNames(f.Cert))), t.nameFix, false}, true
	case netfail.Expired:
		span := ""
		if f.Cert != nil {
			span = fmt.Sprintf(" (valid %s to %s)", f.Cert.NotBefore.Format(time.DateOnly), f.Cert.NotAfter.Format(time.DateOnly))
		}
		return Words{sentence(fmt.Sprintf("%s certificate at %s has expired or is not yet valid%s", whose, t.Addr, span)),
			"Have the certificate renewed, or correct this machine's clock if it is wrong.", false}, true
	case netfail.BadCertificate:
		return Words{sentence(fmt.Sprintf("%s certificate at %s is invalid: %s", whose, t.Addr, trimPeriod(f.Reason))), caFix, false}, true
	case netfail.NotTLS:
		return Words{sentence(fmt.Sprintf("%s at %s did not answer with TLS", t.what, t.Addr)), t.notTLSFix, false}, true
	case netfail.TLSAlert:
		return Words{sentence(fmt.Sprintf("%s at %s ended the TLS handshake: %s", t.what, t.Addr, f.Reason)), t.notTLSFix, false}, true
	}
	return Words{}, false
}

// dnsCause says in words why looking up host failed.
func dnsCause(f netfail.Failure, host string) string {
	switch f.Kind {
	case netfail.NoSuchHost:
		return fmt.Sprintf("DNS has no address for %s (no such host)", host)
	case netfail.DNSTimeout, netfail.Deadline:
		return fmt.Sprintf("the DNS server did not answer for %s in time", host)
	}
	return fmt.Sprintf("DNS lookup of %s failed: %s", host, f.Reason)
}

// netCause says in words why connecting to addr failed after took.
func netCause(f netfail.Failure, addr string, took time.Duration) string {
	switch {
	case f.Kind.DNS():
		return dnsCause(f, f.Host)
	case f.Kind == netfail.Refused:
		return fmt.Sprintf("connection refused: nothing listens on %s, or a firewall rejects the connection", addr)
	case f.Kind == netfail.NoRoute:
		return fmt.Sprintf("no route to %s from this machine", addr)
	case f.Kind == netfail.Reset:
		return fmt.Sprintf("%s reset the connection (a firewall or proxy may be in the way)", addr)
	case f.Kind.TimedOut():
		return fmt.Sprintf("no answer from %s within %s: a firewall probably drops the traffic", addr, took.Round(100*time.Millisecond))
	case f.Kind == netfail.Canceled:
		return "the check was interrupted"
	}
	return fmt.Sprintf("connecting to %s failed: %s", addr, f.Reason)
}

// settingName names a proxy setting in a Detail.
func settingName(src string) string {
	if src == "proxy" {
		return "the site's proxy setting"
	}
	return src
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

func trimPeriod(s string) string { return strings.TrimRight(s, ". ") }

// ifSet is s when v is set, else "".
func ifSet(v, s string) string {
	if v == "" {
		return ""
	}
	return s
}

// ifEmpty is v, or alt when v is empty.
func ifEmpty(v, alt string) string {
	if v == "" {
		return alt
	}
	return v
}

// Rejected words the gateway's refusal r of a hello for broker id:
// refused credentials, a protocol it does not speak, or a broker over its
// session limit. A gateway that is shutting down is no failure of the
// agent's; callers word it themselves.
func Rejected(id string, r tunnel.Reject) Words {
	switch r.Code {
	case tunnel.RejectUnauthorized:
		return Words{fmt.Sprintf("The gateway refused broker id %q or its token.", id),
			"Check broker.id and broker.token (or the file in broker.token_file) against what OX issued.", true}
	case tunnel.RejectOverLimit:
		return Words{sentence(fmt.Sprintf("The gateway refused the session: broker %s has as many sessions as it allows (%s)", id, clip.String(r.Message, 200))),
			"Lower gateway.connections, or stop the other agents of this broker that should not run; OX can raise the limit.", false}
	}
	return Words{sentence(fmt.Sprintf("The gateway refused the session (%s): %s", clip.String(r.Code, 32), clip.String(r.Message, 200))),
		"Upgrade oxbroker to the version OX recommends.", r.Code == tunnel.RejectProtocol}
}

// Ended words the end of a session with the gateway at addr that was up:
// the network or the gateway closed it (err says how).
func Ended(addr string, err error) Words {
	return Words{sentence(fmt.Sprintf("The session with the gateway at %s ended: %s", addr, trimPeriod(netfail.RootCause(err).Error()))),
		"Nothing to do if it comes back; if sessions keep ending, check the firewalls and proxies between this machine and the gateway (idle timeouts, TLS inspection).", false}
}
