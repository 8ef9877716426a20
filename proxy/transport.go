package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/certpool"
)

// Transport settings toward Jira that the config does not expose.
const (
	dialTimeout           = 10 * time.Second
	dialKeepAlive         = 30 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	idleConnTimeout       = 90 * time.Second
	expectContinueTimeout = 1 * time.Second
	maxResponseHeaderSize = 1 << 20
)

// newTransport returns the site's transport to Jira. responseHeaderTimeout
// bounds the wait for Jira's response headers only, so that a long
// download of a large attachment is not cut.
func newTransport(site config.Site, maxConcurrent int, responseHeaderTimeout time.Duration, log *slog.Logger) (*http.Transport, error) {
	tlsConf, err := TLSConfig(site.TLS, log)
	if err != nil {
		return nil, err
	}
	proxy := http.ProxyFromEnvironment
	if site.Proxy != "" {
		u, err := parseProxyURL(site.Proxy)
		if err != nil {
			return nil, err
		}
		proxy = http.ProxyURL(u)
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}
	return &http.Transport{
		Proxy:                  proxy,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    maxConcurrent,
		IdleConnTimeout:        idleConnTimeout,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  expectContinueTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderSize,
		// The caller negotiates its own content encoding with Jira; the
		// broker passes bodies through as they are.
		DisableCompression: true,
	}, nil
}

// TLSConfig returns the TLS client config toward Jira: TLS 1.2 or later,
// the system roots plus the certificates of tls.ca_file (certpool.Load,
// whose ErrNoCertificate its errors wrap), insecure_skip_verify as set.
// `oxbroker check` handshakes with it, as the proxy does.
func TLSConfig(c config.SiteTLS, log *slog.Logger) (*tls.Config, error) {
	roots, err := certpool.Load("tls.ca_file", c.CAFile, log)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		RootCAs:            roots,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify, // #nosec G402 -- the operator's explicit choice, logged at start
	}, nil
}

// parseQuiet parses s, the URL of config key key, which may hold a
// password: its error says why it is not a URL without quoting it, as
// url.Error would.
func parseQuiet(key, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: not a valid URL: %w", key, err)
	}
	return u, nil
}

// parseProxyURL parses the site's proxy setting. Its errors never repeat
// the URL, which may hold a password.
func parseProxyURL(s string) (*url.URL, error) {
	u, err := parseQuiet("proxy", s)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("proxy: scheme %q is not supported (http, https, socks5, socks5h)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("proxy: URL has no host")
	}
	return u, nil
}

// NewClient returns an HTTP client that reaches the site's network the way
// its proxy does (tls.ca_file, insecure_skip_verify, the site's proxy) but
// adds no credentials, for calls that must not carry the token, such as
// Cloud ID discovery from /_edge/tenant_info.
func NewClient(site config.Site, timeout time.Duration, log *slog.Logger) (*http.Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := newTransport(site, 1, timeout, log)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, Timeout: timeout}, nil
}
