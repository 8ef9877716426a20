package main

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// asRootWithNobody skips unless the test runs as root on a machine with
// user nobody: only root can make files another user may not read, and
// switch to that user.
func asRootWithNobody(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	return u
}

// TestUnreadableByService: run as root, validate and check name each file
// of the config that the service's user could not read, with the chgrp
// and chmod that let it; root itself reads them all, so without this the
// check passes where the service fails.
func TestUnreadableByService(t *testing.T) {
	nobody := asRootWithNobody(t)
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := writeServiceConfig(t, dir, "config.yaml", "")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "broker.token") // root's, 0600
	cfg, err := config.LoadAgent(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	want := "broker.token_file: the service would fail: user nobody cannot read " + token +
		" (root:root, mode 0600); run: chgrp " + g.Name + " " + token + " && chmod g+r " + token
	if got := unreadableByService("nobody", path, cfg); len(got) != 1 || got[0] != want {
		t.Errorf("got %q\nwant [%q]", got, want)
	}
	gid, err := strconv.Atoi(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(token, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(token, 0o640); err != nil {
		t.Fatal(err)
	}
	if got := unreadableByService("nobody", path, cfg); len(got) != 0 {
		t.Errorf("after the fix: got %q, want nothing", got)
	}
}

// TestAsServiceCmd: the command check --as-service runs has the service
// user's identity: run with `id` in place of oxbroker, it prints it.
func TestAsServiceCmd(t *testing.T) {
	nobody := asRootWithNobody(t)
	cmd, err := asServiceCmd(context.Background(), "nobody", []string{"check", "--config", "/etc/oxbroker/config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cmd.Args[1:], " "); got != "check --config /etc/oxbroker/config.yaml" {
		t.Errorf("args: got %q", got)
	}
	cmd.Path, cmd.Args = "/usr/bin/id", []string{"id", "-u"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != nobody.Uid {
		t.Errorf("uid: got %s, want %s (nobody)", got, nobody.Uid)
	}
	if _, err := asServiceCmd(context.Background(), "", nil); err == nil || !strings.Contains(err.Error(), "runs as root") {
		t.Errorf("no service user: got %v, want the service runs as root", err)
	}
}
