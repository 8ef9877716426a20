package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
)

// publicBase works out the URL under which a connector reached the API,
// which the gateway sends the agent in Ox-Broker-Public-Base so that it
// can rewrite Jira's links to it: public_url when set; else the request's
// scheme and Host, or, from the reverse proxies of trusted_proxies only,
// X-Forwarded-Proto and X-Forwarded-Host.
type publicBase struct {
	fixed   string // public_url without a trailing "/", or ""
	trusted []netip.Prefix
}

func newPublicBase(cfg *config.Gateway) (*publicBase, error) {
	pb := &publicBase{fixed: strings.TrimRight(cfg.PublicURL, "/")}
	if pb.fixed != "" {
		if err := brokerhttp.CheckPublicBase(pb.fixed); err != nil {
			return nil, fmt.Errorf("public_url: %w", err)
		}
	}
	for i, s := range cfg.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted_proxies[%d]: %w", i, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		pb.trusted = append(pb.trusted, p.Masked())
	}
	return pb, nil
}

// of returns the public base of r, or "" when none can be made (a Host
// that is not a plain host[:port]): then the agent rewrites no links.
func (pb *publicBase) of(r *http.Request) string {
	if pb.fixed != "" {
		return pb.fixed
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if pb.fromTrustedProxy(r.RemoteAddr) {
		if v := lastValue(r.Header["X-Forwarded-Proto"]); v != "" {
			scheme = strings.ToLower(v)
		}
		if v := lastValue(r.Header["X-Forwarded-Host"]); v != "" {
			host = v
		}
	}
	if u, err := url.Parse(scheme + "://" + host); err != nil || u.Host != host || host == "" {
		return ""
	}
	s := scheme + "://" + host
	if brokerhttp.CheckPublicBase(s) != nil {
		return ""
	}
	return s
}

// fromTrustedProxy reports whether remoteAddr is in trusted_proxies.
func (pb *publicBase) fromTrustedProxy(remoteAddr string) bool {
	if len(pb.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range pb.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// lastValue returns the last element of a header that may be repeated
// and comma-separated: the one the nearest proxy, the trusted one, added.
func lastValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	v := vs[len(vs)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// forwardedPublicBase is the public base that the replica which forwarded
// r worked out for its connector; "" if it sent none or an invalid one.
func forwardedPublicBase(r *http.Request) string {
	vs := r.Header.Values(brokerhttp.HeaderPublicBase)
	if len(vs) != 1 || brokerhttp.CheckPublicBase(vs[0]) != nil {
		return ""
	}
	return vs[0]
}
