package packaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/config"
)

func TestUncommentBlock(t *testing.T) {
	in := "sites:\n  - name: a\n\n# Prose: here\n#  - name: b\n#    url: x   # why\n#    # not: this\nadmin:\n#  - name: c\n"
	want := "sites:\n  - name: a\n\n# Prose: here\n  - name: b\n    url: x   # why\n    # not: this\nadmin:\n#  - name: c\n"
	if got := string(UncommentBlock([]byte(in), "  - name: b")); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestAgentExampleDataCenter: the Data Center site of the example, once
// its lines are uncommented (one "#" off each), is a valid second site on
// every OS: its lines uncomment cleanly into the sites list.
func TestAgentExampleDataCenter(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OXBROKER_BROKER_TOKEN_FILE": token, "OXBROKER_SITES_0_AUTH_TOKEN_FILE": token,
		"OXBROKER_SITES_1_AUTH_TOKEN_FILE": token}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, goos := range []string{"linux", "windows", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			example, err := AgentExample("..", goos)
			if err != nil {
				t.Fatal(err)
			}
			both := UncommentBlock(Uncomment(example), "  - name: jira-dc")
			cfg, err := config.ParseAgent(both, lookup)
			if err == nil {
				err = agent.CheckAllowlists(cfg)
			}
			if err != nil {
				t.Fatalf("the example with the Data Center site: %v\n%s", err, both)
			}
			if len(cfg.Sites) != 2 || cfg.Sites[1].Name != "jira-dc" || cfg.Sites[1].Auth.Type != config.AuthBearer ||
				cfg.Sites[1].URL != "https://jira.acme.local" || cfg.Sites[1].TLS.CAFile == "" {
				t.Errorf("got sites %+v; did a line of the Data Center site stay commented?", cfg.Sites)
			}
			if cfg.Gateway.CAFile == "" {
				t.Error("the example has no gateway.ca_file")
			}
		})
	}
}
