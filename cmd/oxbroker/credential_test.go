package main

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCredential(t *testing.T) {
	abs, _ := filepath.Abs("jira.cred")
	for _, tc := range []struct {
		in   string
		want credential
		err  string
	}{
		{"jira-token=/etc/credstore.encrypted/jira-token", credential{Name: "jira-token", Path: "/etc/credstore.encrypted/jira-token"}, ""},
		{"jira_token.v2=jira.cred", credential{Name: "jira_token.v2", Path: abs}, ""},
		{"jira-token", credential{}, "want NAME=FILE"},
		{"=/etc/x", credential{}, "want NAME=FILE"},
		{"jira/token=/etc/x", credential{}, "letters, digits"},
		{"..=/etc/x", credential{}, "letters, digits"},
		{"jira token=/etc/x", credential{}, "letters, digits"},
	} {
		got, err := parseCredential(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestLooksEncrypted: what systemd-creds encrypt writes (testdata: a
// credential sealed with a throwaway container's host key) is told
// apart from tokens, whatever their alphabet.
func TestLooksEncrypted(t *testing.T) {
	sealed, err := os.ReadFile(filepath.Join("testdata", "jira-token.cred"))
	if err != nil {
		t.Fatal(err)
	}
	if !looksEncrypted(sealed) {
		t.Error("systemd-creds output: not recognised as encrypted")
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sealed)))
	if !looksEncrypted(raw) {
		t.Error("the raw (decoded) credential: not recognised as encrypted")
	}
	plain := []string{"", "jira-token", "ATATT3xFfGF0" + strings.Repeat("x", 180), "sha256:abc"}
	for range 1000 {
		b := make([]byte, 48)
		rand.Read(b)
		plain = append(plain, base64.StdEncoding.EncodeToString(b), string(b))
	}
	for _, p := range plain {
		if looksEncrypted([]byte(p)) {
			t.Errorf("%q: taken for an encrypted credential", p)
		}
	}
}
