package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/oxsecurity/oxbroker/internal/golden"

	"github.com/kardianos/service"
)

// unitCases are the golden units: the usual install, and one as root
// with paths that need quoting and escaping.
var unitCases = []struct {
	golden string
	plan   installPlan
}{
	{"oxbroker.service", installPlan{
		Exe: "/usr/local/bin/oxbroker", Config: "/etc/oxbroker/config.yaml",
		StateDir: "/var/lib/oxbroker", User: "oxbroker",
	}},
	{"oxbroker-credentials.service", installPlan{
		Exe: "/usr/local/bin/oxbroker", Config: "/etc/oxbroker/config.yaml",
		StateDir: "/var/lib/oxbroker", User: "oxbroker",
		Credentials: []credential{
			{Name: "jira-token", Path: "/etc/credstore.encrypted/jira-token", Encrypted: true},
			{Name: "broker-token", Path: "/etc/credstore/broker-token"},
		},
	}},
	{"oxbroker-root-quoted.service", installPlan{
		Exe: "/opt/OX Broker/bin/oxbroker", Config: "/etc/oxbroker/100% $HOME.yaml",
		StateDir: "/srv/ox broker/state",
	}},
}

// TestSystemdUnitGolden compares the unit install writes with
// testdata/*.service; run with -update to rewrite them, then read the
// diff: they are what administrators find in /etc/systemd/system.
func TestSystemdUnitGolden(t *testing.T) {
	for _, tc := range unitCases {
		t.Run(tc.golden, func(t *testing.T) {
			unit, err := systemdUnit(tc.plan)
			if err != nil {
				t.Fatal(err)
			}
			checkServiceGolden(t, tc.golden, unit)
		})
	}
}

// TestSystemdUnitVerify runs systemd-analyze verify on the unit rendered
// for real files (verify checks that ExecStart is executable).
func TestSystemdUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian/Ubuntu: apt-get install systemd); the unit is not verified")
	}
	for _, tc := range unitCases {
		t.Run(tc.golden, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.plan
			p.Exe = filepath.Join(dir, p.Exe)
			p.Config = filepath.Join(dir, p.Config)
			p.StateDir = filepath.Join(dir, p.StateDir)
			for _, f := range []string{p.Exe, p.Config} {
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			unit, err := systemdUnit(p)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "oxbroker.service")
			if err := os.WriteFile(file, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", file).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
			}
			// verify also reports problems of other units it loads;
			// those that name this one are ours.
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "oxbroker.service") {
					t.Errorf("systemd-analyze verify: %s", line)
				}
			}
		})
	}
}

// TestInstallWritesRenderedUnit: the unit install hands kardianos comes
// out of kardianos' template step as systemdUnit renders it.
func TestInstallWritesRenderedUnit(t *testing.T) {
	dir := t.TempDir()
	path := writeServiceConfig(t, dir, "config.yaml", "")
	fh := &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	if _, stderr, code := runService(t, fh.host(), "install", "--config", path); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	cfg := fh.opened[0]
	script, ok := cfg.Option["SystemdScript"].(string)
	if !ok {
		t.Fatalf("no SystemdScript option: %v", cfg.Option)
	}
	want, err := systemdUnit(fh.prepared[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := kardianosExecute(t, script, cfg); got != want {
		t.Errorf("kardianos would write:\n%s\nwant:\n%s", got, want)
	}
	if p := fh.prepared[0]; p.Exe != cfg.Executable || p.Config != path || p.StateDir != filepath.Join(dir, "state") || p.User != serviceUser() {
		t.Errorf("plan: got %+v", p)
	}
}

// TestKardianosLiteral: text with template delimiters (a path may hold
// them) survives kardianos' template step.
func TestKardianosLiteral(t *testing.T) {
	text := "ExecStart=/opt/{{.Path}}/x }} {{ {{- end}}\n"
	if got := kardianosExecute(t, kardianosLiteral(text), &service.Config{}); got != text {
		t.Errorf("got %q, want %q", got, text)
	}
}

// kardianosExecute executes script as kardianos' systemd Install does.
func kardianosExecute(t *testing.T, script string, cfg *service.Config) string {
	t.Helper()
	tmpl, err := template.New("").Parse(script)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, struct {
		*service.Config
		Path string
	}{cfg, cfg.Executable}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSystemdUnitRefusesUnsafePaths(t *testing.T) {
	for _, bad := range []string{"/etc/ox\nExecStartPre=/bin/rm", `/etc/ox"broker`, `/etc/ox\broker`} {
		p := unitCases[0].plan
		p.Config = bad
		if _, err := systemdUnit(p); err == nil {
			t.Errorf("config %q: rendered, want an error", bad)
		}
		p = unitCases[0].plan
		p.Credentials = []credential{{Name: "jira-token", Path: bad}}
		if _, err := systemdUnit(p); err == nil {
			t.Errorf("credential %q: rendered, want an error", bad)
		}
	}
	for _, bad := range []string{"/etc/cred store/jira", "/etc/%H/jira"} {
		p := unitCases[0].plan
		p.Credentials = []credential{{Name: "jira-token", Path: bad}}
		if _, err := systemdUnit(p); err == nil {
			t.Errorf("credential %q: rendered, want an error", bad)
		}
	}
}

// TestInstallCredential: with --credential, install validates the config
// that reads ${CREDENTIALS_DIRECTORY}/NAME against the credential, hands
// the unit LoadCredential=, and leaves no copy of the token behind.
func TestInstallCredential(t *testing.T) {
	dir := t.TempDir()
	cred := filepath.Join(dir, "jira-token")
	if err := os.WriteFile(cred, []byte("jira-token-value\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	path := writeServiceConfig(t, dir, "config.yaml", "")
	data, _ := os.ReadFile(path)
	yaml := strings.Replace(string(data), "      token: jira-token\n", "      token_file: ${CREDENTIALS_DIRECTORY}/jira-token\n", 1)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(credentialsEnv, "")
	os.Unsetenv(credentialsEnv)

	fh := &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	if _, stderr, code := runService(t, fh.host(), "install", "--config", path); code != 1 || !strings.Contains(stderr, "CREDENTIALS_DIRECTORY") {
		t.Errorf("without --credential: exit %d, stderr %q; want 1 and the unset CREDENTIALS_DIRECTORY", code, stderr)
	}
	fh = &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	_, stderr, code := runService(t, fh.host(), "install", "--config", path, "--credential", "jira-token="+cred)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "environment") {
		t.Errorf("warned about the environment, although the service has CREDENTIALS_DIRECTORY:\n%s", stderr)
	}
	p := fh.prepared[0]
	if len(p.Credentials) != 1 || p.Credentials[0] != (credential{Name: "jira-token", Path: cred}) {
		t.Fatalf("credentials: got %+v", p.Credentials)
	}
	unit, err := systemdUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "\nLoadCredential=jira-token:"+cred+"\n") {
		t.Errorf("the unit does not load the credential:\n%s", unit)
	}
	for _, f := range p.Files {
		if strings.Contains(f.Path, "oxbroker-credentials-") {
			if _, err := os.Stat(f.Path); err == nil {
				t.Errorf("the staged copy %s is still there", f.Path)
			}
		}
	}
	// A file that says it is encrypted but does not decrypt is refused.
	sealed, _ := os.ReadFile(filepath.Join("testdata", "jira-token.cred"))
	if err := os.WriteFile(cred, sealed, 0o400); err != nil {
		t.Fatal(err)
	}
	fh = &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	if _, stderr, code := runService(t, fh.host(), "install", "--config", path, "--credential", "jira-token="+cred); code != 1 || !strings.Contains(stderr, "systemd-creds") {
		t.Errorf("an encrypted credential of another machine: exit %d, stderr %q; want 1, naming systemd-creds", code, stderr)
	}
}

func TestSandboxProblems(t *testing.T) {
	p := installPlan{Files: []keyPath{
		{"executable", "/home/ops/Downloads/oxbroker"},
		{"--config", "/etc/oxbroker/config.yaml"},
		{"sites[0].auth.token_file", "/tmp/jira.token"},
		{"state_dir", "/root"},
		{"gateway.ca_file", "/homeland/ca.pem"},
	}}
	var got []string
	for _, e := range sandboxProblems(p) {
		got = append(got, e.Path)
	}
	if want := "executable sites[0].auth.token_file state_dir"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

// checkServiceGolden compares got with testdata/name, or rewrites it with -update.
func checkServiceGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got))
}
