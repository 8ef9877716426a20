package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "tok-5f1e0b7d-never-print"
	s := Secret(value)
	a := Agent{Broker: Broker{ID: "b", Token: s}, Sites: []Site{{Auth: Auth{Token: s}}}}

	text, _ := s.MarshalText()
	js, _ := json.Marshal(a)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "token", s, "agent", a)

	outputs := map[string]string{
		"String":      s.String(),
		"GoString":    s.GoString(),
		"LogValue":    s.LogValue().String(),
		"MarshalText": string(text),
		"%v":          fmt.Sprintf("%v", s),
		"%+v":         fmt.Sprintf("%+v", s),
		"%#v":         fmt.Sprintf("%#v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%x":          fmt.Sprintf("%x", s),
		"Println":     fmt.Sprintln(s),
		"struct %+v":  fmt.Sprintf("%+v", a),
		"struct %#v":  fmt.Sprintf("%#v", a),
		"json":        string(js),
		"slog":        logged.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s: got %q, which holds the secret", name, out)
		}
	}
	for _, name := range []string{"String", "GoString", "LogValue", "MarshalText", "%v", "%+v", "%#v", "%s"} {
		if got := outputs[name]; got != Redacted {
			t.Errorf("%s: got %q, want %q", name, got, Redacted)
		}
	}
	if got := s.Reveal(); got != value {
		t.Errorf("Reveal: got %q, want %q", got, value)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	a, err := LoadAgent("testdata/agent-valid.yaml", lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	// Tokens set by override and by file must be hidden as well.
	a.Broker.Token = "override-token-31c4d9"
	out, err := a.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(secretValues, "override-token-31c4d9") {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("Redacted holds %q:\n%s", s, out)
		}
	}
	for _, want := range []string{
		"token: REDACTED",
		"proxy: http://agent:REDACTED@proxy.acme.local:3128",
		"timeout: 90s",
		"max_body: 10MB",
		"max_body: 50MiB",
		"expires: 2027-11-28\n",
		"token_file: testdata/jira.token",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("Redacted lacks %q:\n%s", want, out)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://user:pass@proxy:3128", "http://user:REDACTED@proxy:3128"},
		{"https://u:p%40ss@proxy", "https://u:REDACTED@proxy"},
		{"redis://:pw@redis:6379/0", "redis://:REDACTED@redis:6379/0"},
		{"http://user@proxy:3128", "http://user@proxy:3128"},
		{"http://proxy:3128", "http://proxy:3128"},
		{"broker.ox.security:443", "broker.ox.security:443"},
		{"me@acme.com", "me@acme.com"},
		{"http://us er:pa ss@proxy", Redacted}, // unparsable, with a password
		{"", ""},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
