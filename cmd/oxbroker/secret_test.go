package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
)

// sealingStore is a secretStore in dir whose protector is AES-GCM with
// a key of the test, entropy as additional data: it seals and binds as
// DPAPI does, so the store's logic runs off Windows. The DPAPI calls
// themselves are only cross-compiled here.
func sealingStore(t *testing.T) secretStore {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	return secretStore{
		dir: filepath.Join(t.TempDir(), "secrets"),
		protect: func(data, entropy []byte) ([]byte, error) {
			nonce := make([]byte, gcm.NonceSize())
			rand.Read(nonce)
			return gcm.Seal(nonce, nonce, data, entropy), nil
		},
		unprotect: func(sealed, entropy []byte) ([]byte, error) {
			if len(sealed) < gcm.NonceSize() {
				return nil, errors.New("short")
			}
			return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], entropy)
		},
		mkdir: func(dir string) error { return os.MkdirAll(dir, 0o700) },
	}
}

func TestSecretNames(t *testing.T) {
	for name, v := range map[string]string{"jira-token": "OXBROKER_SECRET_JIRA_TOKEN", "broker": "OXBROKER_SECRET_BROKER", "a-1": "OXBROKER_SECRET_A_1"} {
		if got := secretVar(name); got != v {
			t.Errorf("secretVar(%s): got %s, want %s", name, got, v)
		}
		if got, ok := secretOfVar(v); !ok || got != name {
			t.Errorf("secretOfVar(%s): got %s, %v; want %s", v, got, ok, name)
		}
	}
	for _, v := range []string{"OXBROKER_SECRET_", "OXBROKER_SECRET_jira", "OXBROKER_GATEWAY_ADDRESS", "JIRA_TOKEN", "OXBROKER_SECRET_A.B"} {
		if name, ok := secretOfVar(v); ok {
			t.Errorf("secretOfVar(%s): %s, want no secret", v, name)
		}
	}
	for _, bad := range []string{"", "Jira", "jira_token", "../x", "jira token", `a\b`} {
		if validSecretName(bad) == nil {
			t.Errorf("name %q: accepted", bad)
		}
	}
}

// runSecret runs "oxbroker secret args..." with stdin.
func runSecret(t *testing.T, s secretStore, stdin string, args ...string) (string, string, int) {
	t.Helper()
	root := &cobra.Command{Use: "oxbroker", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(secretCmd(s))
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"secret"}, args...))
	code := cli.Exit(root.Execute(), &errOut)
	return out.String(), errOut.String(), code
}

// TestSecretSetAndConfig: a secret set from standard input is sealed on
// disk, and a config that names it loads with it; a renamed file does
// not open as another secret.
func TestSecretSetAndConfig(t *testing.T) {
	s := sealingStore(t)
	out, stderr, code := runSecret(t, s, "jira-token-value\n", "set", "jira-token")
	if code != 0 || !strings.Contains(out, "${OXBROKER_SECRET_JIRA_TOKEN}") {
		t.Fatalf("secret set: exit %d, %q %q", code, out, stderr)
	}
	sealed, err := os.ReadFile(s.path("jira-token"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("jira-token-value")) {
		t.Fatal("the secret is on disk in clear")
	}
	if left, _ := filepath.Glob(filepath.Join(s.dir, "*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	dir := t.TempDir()
	path := writeServiceConfig(t, dir, "config.yaml", "")
	data, _ := os.ReadFile(path)
	yaml := strings.Replace(string(data), "      token: jira-token\n", "      token: ${OXBROKER_SECRET_JIRA_TOKEN}\n", 1)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	cfg, err := config.LoadAgent(path, s.lookup(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sites[0].Auth.Token.Reveal(); got != "jira-token-value" {
		t.Errorf("the config's token: got %q, want the secret", got)
	}
	if !s.isSecretFile(s.path("jira-token")) || s.isSecretFile(path) {
		t.Error("isSecretFile: the watcher would miss a secret's change, or take the config for one")
	}

	// Copied over another secret's name, the blob does not open.
	if err := os.WriteFile(s.path("broker"), sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.lookup(noEnv)("OXBROKER_SECRET_BROKER"); ok {
		t.Errorf("jira-token's blob opened as the secret broker: %q", v)
	}
	if _, err := config.LoadAgent(path, (secretStore{}).lookup(noEnv)); err == nil || !strings.Contains(err.Error(), "OXBROKER_SECRET_JIRA_TOKEN") {
		t.Errorf("without the store: %v, want the variable named as unset", err)
	}

	if _, _, code := runSecret(t, s, "", "set", "empty"); code != 1 {
		t.Errorf("an empty secret: exit %d, want 1", code)
	}
	if _, _, code := runSecret(t, s, "x\n", "set", "Bad_Name"); code != 2 {
		t.Errorf("a bad name: exit %d, want 2", code)
	}
	if _, _, code := runSecret(t, s, "", "delete", "jira-token"); code != 0 {
		t.Errorf("delete: exit %d", code)
	}
	if _, err := os.Stat(s.path("jira-token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after delete: %v", err)
	}
}

func TestSecretOffWindows(t *testing.T) {
	if _, stderr, code := runSecret(t, secretStore{}, "x\n", "set", "jira-token"); code != 1 || !strings.Contains(stderr, "Windows only") {
		t.Errorf("exit %d, stderr %q; want 1 and Windows only", code, stderr)
	}
}
