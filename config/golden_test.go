package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/internal/golden"
)

// testEnv is the environment of the golden tests. The secrets are
// distinctive so that a test can assert they are printed nowhere.
var testEnv = map[string]string{
	"OXBROKER_TOKEN":        "broker-token-7d21e4c9",
	"JIRA_TOKEN":            "jira-token-0f3c9a55",
	"PROXY_PASSWORD":        "proxy-pass-41b7aa",
	"REDIS_PASSWORD":        "redis-pass-8c2d19",
	"BROKER_TOKEN_RAW":      "raw-broker-token-e5a0",
	"GW_BACKUP":             "broker-us.ox.security",
	"JIRA_HOST":             "jira.acme.local",
	"SECOND_CONNECTOR_HASH": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
}

// secretValues are the testEnv values and file tokens that must never be
// printed.
var secretValues = []string{
	"broker-token-7d21e4c9", "jira-token-0f3c9a55", "proxy-pass-41b7aa",
	"redis-pass-8c2d19", "raw-broker-token-e5a0", "golden-file-token-5b8e61",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// TestGolden loads each testdata/*.yaml (agent-*.yaml as an agent config,
// gateway-*.yaml as a gateway config) and compares the error text, or for
// a valid file the output of Redacted, with testdata/<name>.golden. Run
// with -update to rewrite the golden files, then read the diff: they
// document what users see.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.yaml: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			got := loadForGolden(t, file)
			for _, s := range secretValues {
				if strings.Contains(got, s) {
					t.Errorf("output contains secret %q:\n%s", s, got)
				}
			}
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(got))
		})
	}
}

func loadForGolden(t *testing.T, file string) string {
	t.Helper()
	var (
		cfg interface{ Redacted() ([]byte, error) }
		err error
	)
	switch {
	case strings.HasPrefix(filepath.Base(file), "agent-"):
		cfg, err = LoadAgent(file, lookup(testEnv))
	case strings.HasPrefix(filepath.Base(file), "gateway-"):
		cfg, err = LoadGateway(file, lookup(testEnv))
	default:
		t.Fatalf("%s: name must start with agent- or gateway-", file)
	}
	if err != nil {
		return err.Error() + "\n"
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	return string(out)
}
