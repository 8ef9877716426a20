package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Values the fuzzed parser can reach only as secrets: from ${T...} and
// from token files.
const (
	fuzzEnvSecret  = "env-secret-3f9c2a71d0"
	fuzzFileSecret = "file-secret-8b40e6c2f5"
)

// FuzzParseAgent checks that no input makes the parser panic, and that no
// error message holds a token: neither one the input gives inline nor one
// read from the environment or a token file. The seeds are the agent
// configs of testdata.
func FuzzParseAgent(f *testing.F) {
	seeds, err := filepath.Glob("testdata/agent-*.yaml")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimalAgent))
	f.Add([]byte("broker: {id: b, token: inline-token-0a1b2c3d}\nsites: [{auth: {token: 12345678901234, tokn: x}}]\n"))

	lookupEnv := func(name string) (string, bool) {
		if strings.HasPrefix(name, "T") || name == "OXBROKER_SITES_0_AUTH_TOKEN" {
			return fuzzEnvSecret, true
		}
		return "", false
	}
	// Token files are faked so that random input opens no files.
	readFile := func(name string) ([]byte, string, error) {
		if strings.HasPrefix(name, "testdata/") {
			return []byte(" " + fuzzFileSecret + "\n"), "", nil
		}
		return nil, "", errors.New("open " + name + ": no such file or directory")
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseAgent(data, lookupEnv, readFile)
		if err == nil {
			if err := a.Validate(); err != nil {
				t.Fatalf("a loaded config fails Validate: %v", err)
			}
			out, err := a.Redacted()
			if err != nil {
				t.Fatalf("Redacted: %v", err)
			}
			if bytes.Contains(out, []byte(fuzzFileSecret)) && !bytes.Contains(data, []byte(fuzzFileSecret)) {
				t.Fatalf("Redacted shows a token read from a file:\n%s", out)
			}
			return
		}
		msg := err.Error()
		for _, secret := range []string{fuzzEnvSecret, fuzzFileSecret} {
			// Messages never quote a value, so an expanded or read value
			// must not appear whatever key it went to.
			if strings.Contains(msg, secret) && !bytes.Contains(data, []byte(secret)) {
				t.Fatalf("error holds a secret:\n%s", msg)
			}
		}
		lower := bytes.ToLower(data)
		for _, tok := range inlineTokens(data) {
			// Only distinctive tokens that appear nowhere else in the input
			// (keys included, which are reported lower-cased) are checked:
			// the input may legitimately name the same text elsewhere.
			if len(tok) >= 12 && bytes.Count(lower, []byte(strings.ToLower(tok))) == 1 && strings.Contains(msg, tok) {
				t.Fatalf("error holds the token %q:\n%s", tok, msg)
			}
		}
	})
}

// inlineTokens returns the scalar values of every "token" key in the YAML.
func inlineTokens(data []byte) []string {
	var doc any
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var toks []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.EqualFold(k, "token") {
					toks = append(toks, s)
				}
				walk(x)
			}
		case map[any]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "token" {
					toks = append(toks, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return toks
}
