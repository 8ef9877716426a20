package proxyenv

import (
	"net/url"
	"testing"
)

// TestFor: each way a connection gets or misses a proxy is named. The
// cases run in one process, and net/http reads the proxy variables once,
// so they share one environment.
func TestFor(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("http_proxy", "")
	t.Setenv("NO_PROXY", "jira.acme.local")
	for _, tc := range []struct {
		name, setting, target, want string
	}{
		{"the config's setting", "http://cfg.example:8080", "https://gw.example:443", "through proxy http://cfg.example:8080 (from gateway.proxy)"},
		{"the environment", "", "https://gw.example:443", "through proxy http://user:xxxxx@proxy.example:3128 (from HTTPS_PROXY)"},
		{"NO_PROXY", "", "https://jira.acme.local", "directly (NO_PROXY names jira.acme.local)"},
		{"loopback", "", "https://127.0.0.1:8443", "directly (127.0.0.1 is a loopback address, which is never reached through HTTPS_PROXY)"},
		{"localhost", "", "https://localhost:8443", "directly (localhost is this machine, which is never reached through HTTPS_PROXY)"},
		{"plain http, no HTTP_PROXY", "", "http://jira.example", "directly (HTTP_PROXY is not set)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			c, err := For(tc.setting, "gateway.proxy", u)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
