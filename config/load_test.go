package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimalAgent is a valid agent config with one site; tests add to it.
const minimalAgent = `
broker: {id: acme, token: "${T}"}
state_dir: /tmp/oxbroker
gateway:
  address: gw.example:443
  addresses: ["${H}:443", "b.example:443"]
sites:
  - name: jira
    url: https://jira.acme.local
    auth: {type: bearer, token: "${T}"}
`

func TestExpand(t *testing.T) {
	env := lookup(map[string]string{"A": "x", "B": "y", "REF": "${A}", "EMPTY": ""})
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x"},
		{in: "pre-${A}-${B}-post", want: "pre-x-y-post"},
		{in: "${A}${B}", want: "xy"},
		{in: "${EMPTY}", want: ""},
		{in: "${REF}", want: "${A}"}, // values are not expanded again
		{in: "pa$$word", want: "pa$$word"},
		{in: "a$b $", want: "a$b $"},
		{in: "$A", want: "$A"},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$${A}"},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "x${A", err: `"${" has no closing "}"`},
		{in: "${}", err: "must hold an environment variable name"},
		{in: "${1A}", err: "must hold an environment variable name"},
		{in: "${A-B}", err: "must hold an environment variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expand(tt.in, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseExpandsEveryString(t *testing.T) {
	a, err := ParseAgent([]byte(minimalAgent), lookup(map[string]string{"T": "tok-1", "H": "a.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Broker.Token.Reveal(), "tok-1"; got != want {
		t.Errorf("broker token: got %q, want %q", got, want)
	}
	if got, want := a.Sites[0].Auth.Token.Reveal(), "tok-1"; got != want {
		t.Errorf("site token: got %q, want %q", got, want)
	}
	if got, want := a.Gateway.Addresses, []string{"a.example:443", "b.example:443"}; !slices.Equal(got, want) {
		t.Errorf("addresses: got %q, want %q", got, want)
	}
}

func TestParseReportsMissingVariables(t *testing.T) {
	_, err := ParseAgent([]byte(minimalAgent), lookup(nil))
	want := "broker.token: environment variable T is not set (line 2)\n" +
		"gateway.addresses[0]: environment variable H is not set (line 6)\n" +
		"sites[0].auth.token: environment variable T is not set (line 10)"
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Errorf("got %#v, want Errors with 3 problems", err)
	}
}

func TestAgentOverrides(t *testing.T) {
	env := map[string]string{"T": "tok-1", "H": "a.example", "OXBROKER_TOKEN": "unrelated"}
	tests := []struct {
		name string
		env  map[string]string
		get  func(*Agent) any
		want any
	}{
		{"gateway address", map[string]string{"OXBROKER_GATEWAY_ADDRESS": "other.example:8443"},
			func(a *Agent) any { return a.Gateway.Address }, "other.example:8443"},
		{"log level of an absent mapping", map[string]string{"OXBROKER_LOG_LEVEL": "debug"},
			func(a *Agent) any { return a.Log.Level }, "debug"},
		{"broker token not expanded", map[string]string{"OXBROKER_BROKER_TOKEN": "${NOT_EXPANDED}"},
			func(a *Agent) any { return a.Broker.Token.Reveal() }, "${NOT_EXPANDED}"},
		{"list index", map[string]string{"OXBROKER_SITES_0_AUTH_TOKEN": "site-tok"},
			func(a *Agent) any { return a.Sites[0].Auth.Token.Reveal() }, "site-tok"},
		{"index not in the file is ignored", map[string]string{"OXBROKER_SITES_1_NAME": "second"},
			func(a *Agent) any { return len(a.Sites) }, 1},
		{"comma list", map[string]string{"OXBROKER_GATEWAY_ADDRESSES": " x.example:1, y.example:2 ,"},
			func(a *Agent) any { return a.Gateway.Addresses }, []string{"x.example:1", "y.example:2"}},
		{"comma list in a list item", map[string]string{"OXBROKER_SITES_0_ALLOW_SCOPES": "read:jira-work"},
			func(a *Agent) any { return a.Sites[0].Allow.Scopes }, []string{"read:jira-work"}},
		{"integer", map[string]string{"OXBROKER_GATEWAY_CONNECTIONS": "4"},
			func(a *Agent) any { return a.Gateway.Connections }, 4},
		{"duration", map[string]string{"OXBROKER_SITES_0_TIMEOUT": "5s"},
			func(a *Agent) any { return a.Sites[0].Timeout }, 5 * time.Second},
		{"size", map[string]string{"OXBROKER_SITES_0_MAX_BODY": "1GiB"},
			func(a *Agent) any { return a.Sites[0].MaxBody }, ByteSize(1 << 30)},
		{"bool", map[string]string{"OXBROKER_SITES_0_TLS_INSECURE_SKIP_VERIFY": "true"},
			func(a *Agent) any { return a.Sites[0].TLS.InsecureSkipVerify }, true},
		{"empty turns admin off", map[string]string{"OXBROKER_ADMIN_LISTEN": ""},
			func(a *Agent) any { return a.Admin.Listen }, ""},
		{"unknown variables are ignored", map[string]string{"OXBROKER_NO_SUCH_KEY": "x", "OXBROKER_SITES_0_TOKEN": "x"},
			func(a *Agent) any { return a.Broker.Token.Reveal() }, "tok-1"},
		{"override replaces a missing variable", map[string]string{"T": "", "OXBROKER_BROKER_TOKEN": "b", "OXBROKER_SITES_0_AUTH_TOKEN": "s"},
			func(a *Agent) any { return a.Broker.Token.Reveal() + a.Sites[0].Auth.Token.Reveal() }, "bs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := make(map[string]string)
			for k, v := range env {
				e[k] = v
			}
			for k, v := range tt.env {
				e[k] = v
			}
			if e["T"] == "" {
				delete(e, "T")
			}
			a, err := ParseAgent([]byte(minimalAgent), lookup(e))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(a); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	env := map[string]string{"T": "t", "H": "h", "OXBROKER_GATEWAY_CONNECTIONS": "four", "OXBROKER_SITES_0_TIMEOUT": "soon"}
	_, err := ParseAgent([]byte(minimalAgent), lookup(env))
	want := "gateway.connections: must be an integer\nsites[0].timeout: must be a duration such as 60s, 1m30s or 500ms"
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
}

func TestGatewayOverrides(t *testing.T) {
	const cfg = `
tls: {cert_file: c, key_file: k}
brokers:
  - id: b
    token: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
`
	hash := "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	env := map[string]string{
		"OXGATEWAY_LISTEN_API":                   ":9090",
		"OXGATEWAY_BROKERS_0_CONNECTOR_TOKENS":   hash + "," + hash,
		"OXBROKER_LISTEN_TUNNEL":                 ":1", // the agent's prefix does nothing here
		"OXGATEWAY_REGISTRY_TYPE":                "memory",
		"OXGATEWAY_BROKERS_1_CONNECTOR_TOKENS_0": "ignored",
	}
	g, err := ParseGateway([]byte(cfg), lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.Listen.API, ":9090"; got != want {
		t.Errorf("listen.api: got %q, want %q", got, want)
	}
	if got, want := g.Listen.Tunnel, ":8443"; got != want {
		t.Errorf("listen.tunnel: got %q, want %q", got, want)
	}
	if got, want := g.Brokers[0].ConnectorTokens, []string{hash, hash}; !slices.Equal(got, want) {
		t.Errorf("connector_tokens: got %q, want %q", got, want)
	}
}

// TestOverrideNamesAreUnique guards the mapping from key paths to
// variable names: "." and "[i]" both become "_", so two keys could in
// principle share a variable.
func TestOverrideNamesAreUnique(t *testing.T) {
	for _, root := range []reflect.Type{reflect.TypeFor[Agent](), reflect.TypeFor[Gateway]()} {
		seen := map[string]string{}
		var walk func(typ reflect.Type, path string)
		walk = func(typ reflect.Type, path string) {
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() {
					continue
				}
				p := join(path, f.Tag.Get("mapstructure"))
				switch {
				case isNode(f.Type):
					walk(f.Type, p)
				case isList(f.Type):
					walk(f.Type.Elem(), p+"[0]")
					walk(f.Type.Elem(), p+"[1]")
				default:
					if prev, dup := seen[envName(p)]; dup {
						t.Errorf("%s and %s share the override %s", prev, p, envName(p))
					}
					seen[envName(p)] = p
				}
			}
		}
		walk(root, "")
		if len(seen) < 10 {
			t.Errorf("%s: got %d leaf keys, want more", root, len(seen))
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", "\n  tok-from-file-93ac\t\r\n")
	empty := write("empty", " \n\n")
	huge := write("huge", "huge-token-c0ffee"+strings.Repeat("x", maxTokenFile))
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		broker  string // the broker mapping
		want    string // token, or the error
		wantErr bool
	}{
		{"trimmed", "{id: b, token_file: " + good + "}", "tok-from-file-93ac", false},
		{"empty", "{id: b, token_file: " + empty + "}", "broker.token_file: file " + empty + " is empty", true},
		{"missing", "{id: b, token_file: " + missing + "}", "broker.token_file: open " + missing + ": no such file or directory", true},
		{"too large", "{id: b, token_file: " + huge + "}", "broker.token_file: file " + huge + " is larger than 64 KiB; it does not hold a token", true},
		{"both", "{id: b, token: tok-inline-77aa, token_file: " + good + "}", "broker.token_file: set either token or token_file, not both", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := strings.Replace(minimalAgent, `{id: acme, token: "${T}"}`, tt.broker, 1)
			a, err := ParseAgent([]byte(cfg), lookup(map[string]string{"T": "t", "H": "h"}))
			if tt.wantErr {
				if err == nil || err.Error() != tt.want+" (line 2)" { // the line of token_file
					t.Fatalf("got error %v, want %q", err, tt.want)
				}
				for _, secret := range []string{"tok-from-file-93ac", "huge-token-c0ffee", "tok-inline-77aa"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains the token", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Broker.Token.Reveal(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSiteTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jira.token")
	if err := os.WriteFile(path, []byte("jira-file-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(minimalAgent, `token: "${T}"}`+"\n", `token_file: `+path+"}\n", 1)
	cfg = strings.Replace(cfg, `auth: {type: bearer, token: "${T}"}`, `auth: {type: bearer, token_file: `+path+`}`, 1)
	a, err := ParseAgent([]byte(cfg), lookup(map[string]string{"T": "t", "H": "h"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Sites[0].Auth.Token.Reveal(), "jira-file-tok"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAgentDefaults(t *testing.T) {
	const cfg = `
broker: {id: acme, token: t}
gateway: {address: "gw.example:443"}
sites:
  - name: jira
    cloud_site: acme
    auth: {type: service_account, token: t}
`
	a, err := ParseAgent([]byte(cfg), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := a.Sites[0]
	tests := []struct {
		key       string
		got, want any
	}{
		{"state_dir", a.StateDir, defaultStateDir()},
		{"gateway.transport", a.Gateway.Transport, "auto"},
		{"gateway.connections", a.Gateway.Connections, 2},
		{"sites[0].type", s.Type, "jira"},
		{"sites[0].atlassian_api", s.AtlassianAPI, "https://api.atlassian.com"},
		{"sites[0].allow.scopes", s.Allow.Scopes, []string{"read:jira-user", "read:jira-work", "write:jira-work"}},
		{"sites[0].timeout", s.Timeout, 60 * time.Second},
		{"sites[0].max_concurrent", s.MaxConcurrent, 32},
		{"sites[0].max_body", s.MaxBody, ByteSize(50 << 20)},
		{"admin.listen", a.Admin.Listen, "127.0.0.1:9108"},
		{"log.level", a.Log.Level, "info"},
		{"log.format", a.Log.Format, "text"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.key, tt.got, tt.want)
		}
	}
}

func TestDefaultsOnlyForAbsentKeys(t *testing.T) {
	tests := []struct {
		name, admin string
		want        string
	}{
		{"absent", "", "127.0.0.1:9108"},
		{"null", "admin: {listen: ~}", "127.0.0.1:9108"},
		{"empty mapping", "admin: {}", "127.0.0.1:9108"},
		{"explicit empty is off", `admin: {listen: ""}`, ""},
		{"set", "admin: {listen: '127.0.0.1:9000'}", "127.0.0.1:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAgent([]byte(minimalAgent+tt.admin), lookup(map[string]string{"T": "t", "H": "h"}))
			if err != nil {
				t.Fatal(err)
			}
			if a.Admin.Listen != tt.want {
				t.Errorf("got %q, want %q", a.Admin.Listen, tt.want)
			}
		})
	}

	// An explicit zero is reported, not replaced by the default.
	cfg := strings.Replace(minimalAgent, "    url:", "    timeout: 0s\n    max_concurrent: 0\n    url:", 1)
	_, err := ParseAgent([]byte(cfg), lookup(map[string]string{"T": "t", "H": "h"}))
	want := "sites[0].timeout: must be greater than 0 (line 9)\nsites[0].max_concurrent: must be from 1 to 10000 (line 10)"
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
}

func TestGatewayDefaults(t *testing.T) {
	const cfg = `
listen: {admin: ""}
tls: {cert_file: c, key_file: k}
brokers:
  - id: b
    token: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
`
	g, err := ParseGateway([]byte(cfg), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{g.Listen.Tunnel, g.Listen.API, g.Listen.Admin, g.Registry.Type, g.Log.Level, g.Log.Format}
	want := []string{":8443", ":8080", "", "memory", "info", "text"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDefaultAgentPath(t *testing.T) {
	want := map[string]string{
		"linux":   "/etc/oxbroker/config.yaml",
		"freebsd": "/etc/oxbroker/config.yaml",
		"darwin":  "/Library/Application Support/OXBroker/config.yaml",
		"windows": filepath.Join(os.Getenv("ProgramData"), "OXBroker", "config.yaml"),
	}[runtime.GOOS]
	if want == "" {
		t.Skipf("no expectation for %s", runtime.GOOS)
	}
	if got := DefaultAgentPath(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := LoadAgent(filepath.Join(t.TempDir(), "none.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("broker: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadAgent(bad, nil)
	if err == nil || !strings.HasPrefix(err.Error(), bad+": yaml: line ") {
		t.Errorf("syntax error: got %v, want it to start with %q", err, bad+": yaml: line ")
	}

	_, err = ParseAgent([]byte(minimalAgent+"broker: {}\n"), nil)
	if want := "line 11: mapping key \"broker\" already defined at line 2"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("duplicate key: got %v, want it to contain %q", err, want)
	}

	for _, doc := range []string{"just-a-token-value", "- a\n- b\n"} {
		_, err = ParseAgent([]byte(doc), nil)
		if want := "yaml: the document must be a mapping of keys"; err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}

// TestKeysAreCaseInsensitive documents what viper does to keys: they are
// lower-cased, so unknown keys are reported lower-cased too.
func TestKeysAreCaseInsensitive(t *testing.T) {
	cfg := strings.Replace(minimalAgent, "state_dir:", "State_Dir:", 1) + "Log: {Levle: debug}\n"
	_, err := ParseAgent([]byte(cfg), lookup(map[string]string{"T": "t", "H": "h"}))
	if want := "log.levle: unknown key; did you mean level? (line 11)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestUnknownKeyPointsAtLine: a misspelt key is reported first, with the
// key it probably meant and its line, before the "required" error it
// causes; other problems carry their key's line too.
func TestUnknownKeyPointsAtLine(t *testing.T) {
	const cfg = `broker:
  id: acme
  tokn_file: /etc/oxbroker/broker.token
state_dir: /var/lib/oxbroker
gateway:
  address: gw.example:443
  Connection: 2
sites:
  - name: jira
    url: https://jira.example.com
    auth: {type: bearer, token: t}
    timeout: -1s
`
	_, err := ParseAgent([]byte(cfg), lookup(nil))
	want := `broker.tokn_file: unknown key; did you mean token_file? (line 3)
gateway.connection: unknown key; did you mean connections? (line 7)
broker.token: required (set token or token_file)
sites[0].timeout: must be greater than 0 (line 12)`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestSuggestKey(t *testing.T) {
	typ := reflect.TypeFor[Auth]()
	for k, want := range map[string]string{
		"tokn_file":  "token_file",
		"tokenfile":  "token_file",
		"token-file": "token_file",
		"emial":      "email",
		"expiry":     "expires",
		"expire":     "expires",
		"password":   "",
	} {
		if got := suggestKey(typ, k); got != want {
			t.Errorf("suggestKey(%q): got %q, want %q", k, got, want)
		}
	}
}

// TestAgentAdminListen: service status finds the agent's admin listener in
// a config whose token files only the service can read (a systemd
// credential under ${CREDENTIALS_DIRECTORY}, unset outside the service):
// the other keys' problems do not send it to the default address.
func TestAgentAdminListen(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name, yaml, want, wantErr string
	}{
		{"credential token", `broker: {id: acme, token_file: /nonexistent/broker.token}
sites:
  - {name: jira, url: "https://jira.example.com", auth: {type: bearer, token_file: "${CREDENTIALS_DIRECTORY}/jira-token"}}
admin: {listen: "127.0.0.1:30222"}
`, "127.0.0.1:30222", ""},
		{"absent", "broker: {id: acme}\n", DefaultAgentAdmin, ""},
		{"off", "admin: {listen: \"\"}\n", "", ""},
		{"not a string", "admin: {listen: [1, 2]}\n", "", "admin.listen"},
		{"not yaml", "admin: [\n", "", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := AgentAdminListen(path, noEnv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error about %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := AgentAdminListen(filepath.Join(t.TempDir(), "missing.yaml"), noEnv); err == nil {
		t.Error("a missing file: no error")
	}
}
