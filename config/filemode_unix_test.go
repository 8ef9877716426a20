//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenFileModes: a token file others may change is refused with the
// chmod that fixes it; one others may read loads with a warning; the
// documented modes (0600, and 0640 for the service's group) load quietly.
// A symbolic link is judged by its target.
func TestTokenFileModes(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("tok-mode-5e1f\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		return p
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := file("private", 0o600)
	groupRead := file("group-read", 0o640)
	worldRead := file("world-read", 0o644)
	groupWrite := file("group-write", 0o660)
	worldWrite := file("world-write", 0o602)
	toPrivate := link("to-private", private)
	toWorldWrite := link("to-world-write", worldWrite)

	tests := []struct {
		name, path string
		wantErr    string // substring of the error; "" for none
		wantWarn   string // substring of the warning; "" for none
	}{
		{"0600", private, "", ""},
		{"0640 own group", groupRead, "", ""},
		{"0644", worldRead, "", "readable by every user of this machine (mode 0644); run: chmod o-r " + worldRead},
		{"0660", groupWrite, "writable by its group or by others (mode 0660): anyone among them could replace the token; run: chmod go-w " + groupWrite, ""},
		{"0602", worldWrite, "run: chmod go-w " + worldWrite, ""},
		{"link to 0600", toPrivate, "", ""},
		{"link to 0602", toWorldWrite, "run: chmod go-w " + toWorldWrite, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := strings.Replace(minimalAgent, `{id: acme, token: "${T}"}`, "{id: b, token_file: "+tt.path+"}", 1)
			a, err := ParseAgent([]byte(cfg), lookup(map[string]string{"T": "t", "H": "h"}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "broker.token_file: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "tok-mode-5e1f") {
					t.Errorf("error %q holds the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warns := a.Warnings().Error()
			switch {
			case tt.wantWarn == "" && warns != "":
				t.Errorf("got warnings %q, want none", warns)
			case tt.wantWarn != "" && !strings.Contains(warns, "broker.token_file: "+tt.path+" is "+strings.SplitN(tt.wantWarn, " is ", 2)[0]) && !strings.Contains(warns, tt.wantWarn):
				t.Errorf("got warnings %q, want one containing %q", warns, tt.wantWarn)
			}
		})
	}
}

// TestTokenFileForeignGroup: a token file its group may read warns when
// that group is neither the service's nor one of this process's.
func TestTokenFileForeignGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's group to a foreign one needs root")
	}
	const nogroup = 65534
	if trustedGroup(nogroup, AgentGroup) {
		t.Skip("gid 65534 is one of this process's groups")
	}
	p := filepath.Join(t.TempDir(), "jira.token")
	if err := os.WriteFile(p, []byte("tok\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, -1, nogroup); err != nil {
		t.Fatal(err)
	}
	_, advice, err := ReadSecretFile(p, AgentGroup)
	if err != nil {
		t.Fatal(err)
	}
	if want := "which is not the service's group; run: chgrp oxbroker " + p; !strings.Contains(advice, want) {
		t.Errorf("got advice %q, want one containing %q", advice, want)
	}
}
