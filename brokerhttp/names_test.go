package brokerhttp

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"acme", true},
		{"a", true},
		{"0", true},
		{"jira-cloud-2", true},
		{"a-", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-acme", false},
		{"Acme", false},
		{"ac_me", false},
		{"ac.me", false},
		{"ac/me", false},
		{"acme\n", false},
		{" acme", false},
		{"é", false},
	} {
		if got := ValidName(tc.name); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
