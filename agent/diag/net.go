package diag

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/internal/hostport"
	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// checkDNS resolves host, t's host. Through a proxy, the proxy resolves
// names, so a local failure is only a warning.
func checkDNS(ctx context.Context, host string, viaProxy bool, t Target) outcome {
	if ip := net.ParseIP(host); ip != nil {
		return skipped("%s is an IP address", host)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		w := t.Resolve(err)
		if viaProxy {
			return warned("lookup "+host, w.Cause,
				"Nothing is required if the proxy reaches "+host+" (the tcp check tells); the proxy resolves names itself.")
		}
		return failedWith("lookup "+host, w)
	}
	if len(addrs) > 4 {
		addrs = append(addrs[:4], "…")
	}
	return passed("%s → %s", host, strings.Join(addrs, ", "))
}

// dialDirect opens a TCP connection to t, as the agent does without a
// proxy.
func dialDirect(ctx context.Context, t Target) (net.Conn, outcome) {
	var nd net.Dialer
	start := time.Now()
	conn, err := nd.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, failedWith("connect to "+t.Addr, t.Connect(err, time.Since(start)))
	}
	return conn, passed("connected to %s", peer(t.Addr, conn))
}

// dialProxy opens a TCP tunnel to t through the HTTP CONNECT proxy pu
// with tunnel.DialProxy, the agent's own CONNECT dialer.
func dialProxy(ctx context.Context, pu *url.URL, t Target) (net.Conn, outcome) {
	detail := fmt.Sprintf("through the proxy %s (from %s)", pu.Redacted(), settingName(t.ProxyKey))
	start := time.Now()
	conn, err := tunnel.DialProxy(ctx, pu, t.Addr)
	if err != nil {
		return nil, failedWith(detail, t.Connect(err, time.Since(start)))
	}
	return conn, passed("%s: CONNECT %s answered 200", detail, t.Addr)
}

// dialProxyOnly connects to the proxy pu alone, for the proxies the
// site's transport does not use CONNECT with (SOCKS, or http:// Jira
// through an HTTP proxy): they connect to Jira per request.
func dialProxyOnly(ctx context.Context, pu *url.URL, t Target) outcome {
	paddr := proxyAddr(pu)
	var nd net.Dialer
	start := time.Now()
	pc, err := nd.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return failed("proxy "+pu.Redacted(), sentence("Cannot connect to the proxy: "+netCause(netfail.Classify(err), paddr, time.Since(start))),
			"Check the proxy address in "+t.ProxyKey+".")
	}
	pc.Close()
	return passed("connected to the proxy %s (from %s); it connects to %s for each request", pu.Redacted(), settingName(t.ProxyKey), t.Addr)
}

// proxyAddr is the host:port of a proxy URL: SOCKS's port 1080 by
// default, else an HTTP proxy's (tunnel.ProxyHostPort).
func proxyAddr(pu *url.URL) string {
	if (pu.Scheme == "socks5" || pu.Scheme == "socks5h") && pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "1080")
	}
	return hostport.Of(pu)
}

// peer names the address connected to, with the IP when addr is a name.
func peer(addr string, c net.Conn) string {
	ra := c.RemoteAddr().String()
	if ra == addr {
		return addr
	}
	return addr + " (" + ra + ")"
}
