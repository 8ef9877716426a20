package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps the architecture honest: the agent binary never links
// the gateway (OX's side), the gateway never links the code that handles
// Jira credentials, and neither links test doubles. A banned package of
// the module bans the packages below it too (gateway bans
// gateway/redistest); bannedStd are standard packages.
func TestDeps(t *testing.T) {
	const mod = "github.com/oxsecurity/oxbroker/"
	tests := []struct {
		pkg       string
		banned    []string
		bannedStd []string
	}{
		{"../cmd/oxbroker", []string{"gateway", "jira/jiratest", "tunnel/tunneltest", "devcert", "internal/testenv"}, []string{"net/http/httptest"}},
		{"../cmd/oxbroker-gateway", []string{"proxy", "agent", "jira/jiratest", "tunnel/tunneltest", "gateway/redistest", "internal/testenv"}, []string{"net/http/httptest"}},
		{"../tunnel", []string{"jira", "proxy", "agent", "gateway", "config"}, nil},
		{"../proxy", []string{"tunnel", "agent", "gateway", "cmd"}, nil},
		{"../jira", []string{"tunnel", "proxy", "agent", "gateway"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.pkg, "../"), func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", tt.pkg).Output()
			if err != nil {
				t.Fatal(err)
			}
			deps := strings.Fields(string(out))
			for _, d := range deps {
				for _, b := range tt.banned {
					if d == mod+b || strings.HasPrefix(d, mod+b+"/") {
						t.Errorf("%s imports %s", tt.pkg, d)
					}
				}
				if slices.Contains(tt.bannedStd, d) {
					t.Errorf("%s imports %s", tt.pkg, d)
				}
			}
		})
	}
}
