package hostport

import (
	"net/url"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://jira.example.com", "jira.example.com:443"},
		{"https://jira.example.com/base", "jira.example.com:443"},
		{"http://jira.example.com", "jira.example.com:80"},
		{"HTTPS://jira.example.com", "jira.example.com:443"},
		{"https://jira.example.com:8443", "jira.example.com:8443"},
		{"http://proxy:3128", "proxy:3128"},
		{"http://[::1]", "[::1]:80"},
		{"https://[::1]:9443", "[::1]:9443"},
		{"https://user:pass@proxy", "proxy:443"},
		{"http://jira.example.com:", "jira.example.com:80"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Of(u); got != tc.want {
			t.Errorf("Of(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
}
