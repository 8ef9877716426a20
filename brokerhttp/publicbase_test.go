package brokerhttp

import "testing"

func TestCheckPublicBase(t *testing.T) {
	good := []string{
		"https://broker.ox.security",
		"http://127.0.0.1:8080",
		"https://ox.example/broker",
		"http://[::1]:8080",
		"https://ox.example/a%20b",
	}
	bad := []string{
		"",
		"broker.ox.security",
		"/b/acme",
		"ftp://broker.ox.security",
		"https://",
		"https://user:pass@broker.ox.security",
		"https://broker.ox.security/?q=1",
		"https://broker.ox.security/#frag",
		"https://broker.ox.security/",
		`https://broker.ox.security/"},"x":"`,
		`https://broker.ox.security\evil`,
		"https://broker.ox.security\r\nX-Evil: 1",
		"https://broker ox.security",
		"javascript:alert(1)",
		"https://" + string(make([]byte, 600)),
	}
	for _, s := range good {
		if err := CheckPublicBase(s); err != nil {
			t.Errorf("CheckPublicBase(%q): got %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if err := CheckPublicBase(s); err == nil {
			t.Errorf("CheckPublicBase(%q): got nil, want an error", s)
		}
	}
	if got, want := SiteURL("https://gw", "acme", "jira"), "https://gw/b/acme/jira"; got != want {
		t.Errorf("SiteURL: got %q, want %q", got, want)
	}
}
