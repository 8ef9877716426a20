package packaging

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/config"
)

// TestAgentExample: as shipped, the example is not a config (so the
// service cannot start on it by mistake); uncommented, it is a valid one
// on every OS, so that it keeps up with the config schema; its Data
// Center site, uncommented too (one "#" off each line), is a valid second
// site: its lines uncomment cleanly.
func TestAgentExample(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The example's token files are in /etc/oxbroker and the like: point
	// the two keys at a file that exists, through the documented overrides.
	env := map[string]string{"OXBROKER_BROKER_TOKEN_FILE": token, "OXBROKER_SITES_0_AUTH_TOKEN_FILE": token,
		"OXBROKER_SITES_1_AUTH_TOKEN_FILE": token}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, goos := range []string{"linux", "windows", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			example, err := AgentExample("..", goos)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(example, []byte("{{")) || bytes.Contains(example, []byte("<no value>")) {
				t.Errorf("template left over:\n%s", example)
			}
			if crlf := bytes.Contains(example, []byte("\r\n")); crlf != (goos == "windows") {
				t.Errorf("CRLF line endings: got %v, want them on Windows only", crlf)
			}
			var errs config.Errors
			if _, err := config.ParseAgent(example, lookup); !errors.As(err, &errs) || !strings.Contains(err.Error(), "broker.id: required") {
				t.Errorf("the example as shipped: got %v, want broker.id: required", err)
			}
			uncommented := Uncomment(example)
			cfg, err := config.ParseAgent(uncommented, lookup)
			if err == nil {
				err = agent.CheckAllowlists(cfg)
			}
			if err != nil {
				t.Fatalf("the example, uncommented: %v\n%s", err, uncommented)
			}
			if len(cfg.Sites) != 1 || cfg.Broker.ID != "acme-prod" || cfg.Gateway.Address == "" {
				t.Errorf("the example, uncommented: got %d sites, broker %q, gateway %q; did a setting stay commented?",
					len(cfg.Sites), cfg.Broker.ID, cfg.Gateway.Address)
			}
			if dirs := exampleDirs[goos]; cfg.StateDir != dirs.State {
				t.Errorf("state_dir: got %q, want %q", cfg.StateDir, dirs.State)
			}
			if cfg.Gateway.CAFile == "" {
				t.Error("the example has no gateway.ca_file")
			}

			both := UncommentBlock(uncommented, "  - name: jira-dc")
			if cfg, err = config.ParseAgent(both, lookup); err == nil {
				err = agent.CheckAllowlists(cfg)
			}
			if err != nil {
				t.Fatalf("the example with the Data Center site: %v\n%s", err, both)
			}
			if len(cfg.Sites) != 2 || cfg.Sites[1].Name != "jira-dc" || cfg.Sites[1].Auth.Type != config.AuthBearer ||
				cfg.Sites[1].URL != "https://jira.acme.local" || cfg.Sites[1].TLS.CAFile == "" {
				t.Errorf("got sites %+v; did a line of the Data Center site stay commented?", cfg.Sites)
			}
		})
	}
}

// TestGatewayExample: uncommented, the gateway's example is valid once the
// token hashes are filled in, and refused until then.
func TestGatewayExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("config", "oxbroker-gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	uncommented := Uncomment(example)
	if _, err := config.ParseGateway(uncommented, noEnv); err == nil || !strings.Contains(err.Error(), "brokers[0].token") {
		t.Errorf("with the placeholders: got %v, want brokers[0].token refused", err)
	}
	hash := "sha256:" + strings.Repeat("ab", 32)
	filled := fillPlaceholders(t, uncommented, hash)
	cfg, err := config.ParseGateway(filled, noEnv)
	if err != nil {
		t.Fatalf("the example, uncommented and filled in: %v\n%s", err, filled)
	}
	if len(cfg.Brokers) != 1 || cfg.TLS.CertFile == "" || cfg.Listen.Admin != "127.0.0.1:9109" {
		t.Errorf("got %+v; did a setting stay commented?", cfg)
	}
}

func fillPlaceholders(t *testing.T, b []byte, hash string) []byte {
	t.Helper()
	for _, p := range []string{"sha256:REPLACE_WITH_THE_AGENT_TOKEN_HASH", "sha256:REPLACE_WITH_THE_CONNECTOR_TOKEN_HASH"} {
		if !bytes.Contains(b, []byte(p)) {
			t.Fatalf("placeholder %s is gone from the example", p)
		}
		b = bytes.ReplaceAll(b, []byte(p), []byte(hash))
	}
	return b
}

func TestUncomment(t *testing.T) {
	in := "# Prose.\n#   1. a step: with a colon\n\n#broker:\n#  id: x   # why\n#  # a: comment\n# more prose: here\n#  not: this\n"
	want := "# Prose.\n#   1. a step: with a colon\n\nbroker:\n  id: x   # why\n  # a: comment\n# more prose: here\n#  not: this\n"
	if got := string(Uncomment([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
