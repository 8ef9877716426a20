//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreadable: what keeps a user from a file is named, with the
// command that lets it read the file; its owner's bits are judged for the
// owner, the group's for a member.
func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "jira.token")
	if err := os.WriteFile(file, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	me := thisProcess()

	t.Run("the owner without its read bit", func(t *testing.T) {
		if me.uid == 0 {
			t.Skip("root reads every file")
		}
		chmod(t, file, 0o200)
		want := "user " + me.name + " cannot read " + file + " (" + me.name + ":"
		if got := me.unreadable(file); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "; run: chmod u+r "+file) {
			t.Errorf("got %q, want %q… ending in chmod u+r", got, want)
		}
		chmod(t, file, 0o600)
		if got := me.unreadable(file); got != "" {
			t.Errorf("readable: got %q, want \"\"", got)
		}
	})

	// Another user: only root can give files to others.
	if me.uid != 0 {
		return
	}
	nobody, err := lookupAccount("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	group := groupName(nobody.gid)
	t.Run("a file of root's", func(t *testing.T) {
		chmod(t, file, 0o600)
		want := "user nobody cannot read " + file + " (root:root, mode 0600); run: chgrp " + group + " " + file + " && chmod g+r " + file
		if got, err := UnreadableBy("nobody", file); err != nil || got != want {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("in the user's group", func(t *testing.T) {
		if err := os.Chown(file, 0, int(nobody.gid)); err != nil {
			t.Fatal(err)
		}
		defer os.Chown(file, 0, 0)
		want := "user nobody cannot read " + file + " (root:" + group + ", mode 0600); run: chmod g+r " + file
		if got := nobody.unreadable(file); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		chmod(t, file, 0o640)
		if got := nobody.unreadable(file); got != "" {
			t.Errorf("root:%s 0640: got %q, want \"\"", group, got)
		}
	})
	t.Run("a folder on the way", func(t *testing.T) {
		chmod(t, file, 0o644)
		chmod(t, dir, 0o700)
		defer chmod(t, dir, 0o755)
		want := "user nobody may not enter folder " + dir + " (root:root, mode 0700), so it cannot read " + file +
			"; run: chgrp " + group + " " + dir + " && chmod g+x " + dir
		if got := nobody.unreadable(file); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("no such user", func(t *testing.T) {
		if _, err := UnreadableBy("no-such-user-oxbroker", file); err == nil {
			t.Error("got no error for a user that does not exist")
		}
	})
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
