// Package proxyenv says which HTTP proxy a connection goes through, and
// why: a setting of the config, the HTTPS_PROXY (or HTTP_PROXY) variable
// of the environment, or none — because nothing is set, because NO_PROXY
// names the host, or because the host is a loopback address, which Go's
// proxy rules never send through a proxy. The agent logs it, so that a
// proxy the service inherited from its environment is no surprise.
//
// The choice itself is net/http's (http.ProxyFromEnvironment), the one the
// agent's dialers use; this package only explains it.
package proxyenv

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Choice is the proxy of a connection and where it comes from.
type Choice struct {
	// URL is the proxy, nil for none.
	URL *url.URL
	// From is what chose it: the config key, or the environment variable;
	// "" when there is no proxy.
	From string
	// Why says why there is no proxy; "" when there is one.
	Why string
}

// For returns the proxy of a connection to target: setting, the value of
// the config key settingKey, when it is set; else the environment's, as
// http.ProxyFromEnvironment picks it for target's scheme.
func For(setting, settingKey string, target *url.URL) (Choice, error) {
	if setting != "" {
		u, err := url.Parse(setting)
		if err != nil {
			return Choice{}, fmt.Errorf("%s: not a valid URL", settingKey)
		}
		return Choice{URL: u, From: settingKey}, nil
	}
	envKey := "HTTPS_PROXY"
	if target.Scheme == "http" {
		envKey = "HTTP_PROXY"
	}
	u, err := http.ProxyFromEnvironment(&http.Request{URL: target})
	if err != nil {
		return Choice{}, fmt.Errorf("%s: %w", envKey, err)
	}
	if u != nil {
		return Choice{URL: u, From: envKey}, nil
	}
	return Choice{Why: whyNone(envKey, target.Hostname())}, nil
}

// whyNone says why http.ProxyFromEnvironment chose no proxy for host.
func whyNone(envKey, host string) string {
	if getenv(envKey) == "" {
		return envKey + " is not set"
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return host + " is this machine, which is never reached through " + envKey
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return host + " is a loopback address, which is never reached through " + envKey
	}
	return "NO_PROXY names " + host
}

// getenv reads a proxy variable as net/http does: the upper-case name,
// else the lower-case one.
func getenv(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return os.Getenv(strings.ToLower(key))
}

// String says in a few words how the connection goes: "through proxy
// http://proxy:3128 (from HTTPS_PROXY)" or "directly (NO_PROXY names
// jira.acme.local)". The proxy's password is redacted.
func (c Choice) String() string {
	if c.URL == nil {
		return "directly (" + c.Why + ")"
	}
	return "through proxy " + c.URL.Redacted() + " (from " + c.From + ")"
}
