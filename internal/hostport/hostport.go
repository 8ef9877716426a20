// Package hostport gives the address to dial for an http or https URL:
// its host with the port made explicit.
package hostport

import (
	"net"
	"net/url"
)

// DefaultPort is the port of an http or https URL that names none: 443
// for https, 80 for http. Any other scheme is taken as http.
func DefaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// Of returns u's host:port: u.Host when it names a port, else u's host
// with DefaultPort(u.Scheme).
func Of(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), DefaultPort(u.Scheme))
}
