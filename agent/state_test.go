package agent

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var agentIDForm = regexp.MustCompile(`^[0-9a-f]{32}$`)

func readAgentIDFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadAgentIDCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "oxbroker") // does not exist yet
	id, err := loadAgentID(dir)
	if err != nil {
		t.Fatalf("loadAgentID: %v", err)
	}
	if !agentIDForm.MatchString(id) {
		t.Fatalf("agent id: got %q, want 32 lowercase hex digits", id)
	}
	if got, want := readAgentIDFile(t, dir), id+"\n"; got != want {
		t.Errorf("agent-id file: got %q, want %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("agent-id mode: got %s, want no access for others", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state_dir holds %v, want only agent-id", entries)
	}

	// Stable across calls (restarts).
	for range 3 {
		again, err := loadAgentID(dir)
		if err != nil {
			t.Fatalf("loadAgentID again: %v", err)
		}
		if again != id {
			t.Fatalf("agent id after a restart: got %s, want %s", again, id)
		}
	}
	// Another state_dir is another agent.
	other, err := loadAgentID(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other == id {
		t.Errorf("two state dirs got the same agent id %s", id)
	}
}

func TestLoadAgentIDExistingFile(t *testing.T) {
	const good = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		content string
		keep    bool // the id in the file is used
	}{
		{"as written", good + "\n", true},
		{"no newline", good, true},
		{"surrounding white space", "  " + good + "\r\n\n", true},
		{"empty", "", false},
		{"garbage", "not an id\n", false},
		{"upper-case hex", "0123456789ABCDEF0123456789ABCDEF\n", false},
		{"too short", good[:31] + "\n", false},
		{"too long", good + "0\n", false},
		{"two ids", good + "\n" + good + "\n", false},
		{"binary", "\x00\xff\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "agent-id"), []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			id, err := loadAgentID(dir)
			if err != nil {
				t.Fatalf("loadAgentID: %v", err)
			}
			if tt.keep {
				if id != good {
					t.Errorf("agent id: got %q, want %q from the file", id, good)
				}
				return
			}
			if !agentIDForm.MatchString(id) || id == good {
				t.Errorf("agent id from a damaged file: got %q, want a new id", id)
			}
			if got, want := readAgentIDFile(t, dir), id+"\n"; got != want {
				t.Errorf("agent-id file after replacing a damaged one: got %q, want %q", got, want)
			}
			if again, _ := loadAgentID(dir); again != id {
				t.Errorf("agent id after the replacement: got %s, want %s (stable)", again, id)
			}
		})
	}
}

func TestLoadAgentIDErrors(t *testing.T) {
	// These fail for root too, unlike a read-only directory.
	t.Run("state_dir is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "state")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if id, err := loadAgentID(file); err == nil {
			t.Errorf("loadAgentID with state_dir a file: got id %q, want an error", id)
		}
		if id, err := loadAgentID(filepath.Join(file, "sub")); err == nil {
			t.Errorf("loadAgentID with state_dir below a file: got id %q, want an error", id)
		}
	})
	t.Run("agent-id is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "agent-id"), 0o700); err != nil {
			t.Fatal(err)
		}
		if id, err := loadAgentID(dir); err == nil {
			t.Errorf("loadAgentID with agent-id a directory: got id %q, want an error", id)
		}
	})
	t.Run("read-only state_dir", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which may write into a read-only directory")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		if id, err := loadAgentID(dir); err == nil {
			t.Errorf("loadAgentID in a read-only directory: got id %q, want an error", id)
		}
		if id, err := loadAgentID(filepath.Join(dir, "sub")); err == nil {
			t.Errorf("loadAgentID below a read-only directory: got id %q, want an error", id)
		}
	})
}
