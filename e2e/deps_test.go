package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps the architecture honest: the agent binary never links
// the gateway (OX's side), the gateway never links the code that handles
// Jira credentials, and neither links test doubles.
func TestDeps(t *testing.T) {
	const mod = "github.com/oxsecurity/oxbroker/"
	tests := []struct {
		pkg    string
		banned []string
	}{
		{"../cmd/oxbroker", []string{"gateway", "jira/jiratest", "tunnel/tunneltest", "devcert"}},
		{"../cmd/oxbroker-gateway", []string{"proxy", "agent", "jira/jiratest", "tunnel/tunneltest", "gateway/redistest"}},
		{"../tunnel", []string{"jira", "proxy", "agent", "gateway", "config"}},
		{"../proxy", []string{"tunnel", "agent", "gateway"}},
		{"../jira", []string{"tunnel", "proxy", "agent", "gateway"}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.pkg, "../"), func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", tt.pkg).Output()
			if err != nil {
				t.Fatal(err)
			}
			deps := strings.Fields(string(out))
			for _, b := range tt.banned {
				if slices.Contains(deps, mod+b) {
					t.Errorf("%s imports %s", tt.pkg, mod+b)
				}
			}
		})
	}
}
