package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
)

// fakeService is a service manager that only records what it is asked.
type fakeService struct {
	status service.Status
	err    error // Status's error; service.ErrNotInstalled for none
	calls  []string
}

func (f *fakeService) Run() error                                  { return nil }
func (f *fakeService) Start() error                                { f.calls = append(f.calls, "start"); return nil }
func (f *fakeService) Stop() error                                 { f.calls = append(f.calls, "stop"); return nil }
func (f *fakeService) Restart() error                              { f.calls = append(f.calls, "restart"); return nil }
func (f *fakeService) Install() error                              { f.calls = append(f.calls, "install"); return nil }
func (f *fakeService) Uninstall() error                            { f.calls = append(f.calls, "uninstall"); return nil }
func (f *fakeService) Logger(chan<- error) (service.Logger, error) { return service.ConsoleLogger, nil }
func (f *fakeService) SystemLogger(chan<- error) (service.Logger, error) {
	return service.ConsoleLogger, nil
}
func (f *fakeService) String() string                  { return serviceDisplayName }
func (f *fakeService) Platform() string                { return "fake" }
func (f *fakeService) Status() (service.Status, error) { return f.status, f.err }

// fakeHost hands out svc and records the config install gave it.
type fakeHost struct {
	svc      *fakeService
	opened   []*service.Config
	prepared []installPlan
	denied   error // what privileged returns
}

func (h *fakeHost) host() serviceHost {
	return serviceHost{
		open: func(cfg *service.Config) (service.Service, error) {
			h.opened = append(h.opened, cfg)
			return h.svc, nil
		},
		privileged: func() error { return h.denied },
		prepare: func(p installPlan) error {
			h.prepared = append(h.prepared, p)
			return nil
		},
	}
}

// runService runs "oxbroker service args..." and returns its output and
// exit code as cli.Main would.
func runService(t *testing.T, h serviceHost, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := &cobra.Command{Use: "oxbroker", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(newServiceCmd(h))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"service"}, args...))
	code = cli.Exit(root.ExecuteContext(context.Background()), &errOut)
	return out.String(), errOut.String(), code
}

// writeServiceConfig writes an agent config into dir whose state_dir and token
// file are absolute paths in dir, followed by extra.
func writeServiceConfig(t *testing.T, dir, name, extra string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "broker.token"), []byte("broker-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`broker:
  id: acme-prod
  token_file: %s
state_dir: %s
gateway:
  address: broker.ox.security:443
sites:
  - name: jira
    url: https://jira.acme.local
    auth:
      type: bearer
      token: jira-token
%s`, filepath.Join(dir, "broker.token"), filepath.Join(dir, "state"), extra)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInstallRefusesBrokenConfig: install prints every problem as a
// key.path line and exits 1 before it asks anything of the system.
func TestInstallRefusesBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	broken := "broker:\n  token: abc\ngateway:\n  address: nohost\n  transport: carrier-pigeon\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	fh := &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	stdout, stderr, code := runService(t, fh.host(), "install", "--config", path)
	if code != cli.ExitFailed {
		t.Errorf("exit code: got %d, want %d", code, cli.ExitFailed)
	}
	for _, want := range []string{path + ":", "broker.id: required", "gateway.address: ", "gateway.transport: ", "not installed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("stdout: got %q, want nothing", stdout)
	}
	if len(fh.opened) > 0 || len(fh.prepared) > 0 || len(fh.svc.calls) > 0 {
		t.Errorf("touched the system: opened %d, prepared %d, calls %v", len(fh.opened), len(fh.prepared), fh.svc.calls)
	}
}

// TestInstallRefusesRelativePaths: a config that loads but names files
// relative to the installer's folder would break under the service.
func TestInstallRefusesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := writeServiceConfig(t, dir, "config.yaml", "    tls:\n      ca_file: certs/jira.pem\n")
	fh := &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	_, stderr, code := runService(t, fh.host(), "install", "--config", path)
	if code != cli.ExitFailed {
		t.Errorf("exit code: got %d, want %d", code, cli.ExitFailed)
	}
	if want := `sites[0].tls.ca_file: "certs/jira.pem" is a relative path`; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
	if len(fh.opened) > 0 || len(fh.svc.calls) > 0 {
		t.Errorf("touched the system: opened %d, calls %v", len(fh.opened), fh.svc.calls)
	}
}

// TestInstallMakesConfigAbsolute: a relative --config is registered as
// an absolute path, with this executable, also absolute.
func TestInstallMakesConfigAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeServiceConfig(t, filepath.Join(dir, "etc"), "config.yaml", "")
	t.Chdir(dir)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	fh := &fakeHost{svc: &fakeService{err: service.ErrNotInstalled}}
	stdout, stderr, code := runService(t, fh.host(), "install", "--config", filepath.Join("etc", "config.yaml"))
	if code != cli.ExitOK {
		t.Fatalf("exit code: got %d, want 0; stderr:\n%s", code, stderr)
	}
	if len(fh.opened) != 1 {
		t.Fatalf("service manager opened %d times, want 1", len(fh.opened))
	}
	cfg := fh.opened[0]
	wantConfig := filepath.Join(wd, "etc", "config.yaml")
	if want := []string{"run", "--config", wantConfig}; !slices.Equal(cfg.Arguments, want) {
		t.Errorf("arguments: got %q, want %q", cfg.Arguments, want)
	}
	exe, _ := os.Executable()
	if !filepath.IsAbs(cfg.Executable) || cfg.Executable != exe {
		t.Errorf("executable: got %q, want %q", cfg.Executable, exe)
	}
	if cfg.Name != "oxbroker" || cfg.DisplayName != "OX Broker agent" ||
		cfg.Description != "Lets OX reach Jira without holding its token or opening an inbound port" {
		t.Errorf("names: got %q, %q, %q", cfg.Name, cfg.DisplayName, cfg.Description)
	}
	if !slices.Equal(fh.svc.calls, []string{"install"}) {
		t.Errorf("calls: got %v, want [install]", fh.svc.calls)
	}
	if len(fh.prepared) != 1 || fh.prepared[0].StateDir != filepath.Join(wd, "etc", "state") {
		t.Errorf("prepared: got %+v, want state_dir %s", fh.prepared, filepath.Join(wd, "etc", "state"))
	}
	if !strings.Contains(stdout, "runs: "+exe+" run --config "+wantConfig) {
		t.Errorf("stdout does not show the command line:\n%s", stdout)
	}
}

// TestInstallRefusesSecondInstall: an installed service is not overwritten.
func TestInstallRefusesSecondInstall(t *testing.T) {
	path := writeServiceConfig(t, t.TempDir(), "config.yaml", "")
	fh := &fakeHost{svc: &fakeService{status: service.StatusStopped}}
	_, stderr, code := runService(t, fh.host(), "install", "--config", path)
	if code != cli.ExitFailed || !strings.Contains(stderr, "already installed") {
		t.Errorf("got exit %d, stderr %q; want 1 and \"already installed\"", code, stderr)
	}
	if len(fh.svc.calls) > 0 || len(fh.prepared) > 0 {
		t.Errorf("calls %v, prepared %d: want none", fh.svc.calls, len(fh.prepared))
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status service.Status
		err    error
		out    string
		code   int
	}{
		{"running", service.StatusRunning, nil, "installed: yes\nrunning\n", 0},
		{"stopped", service.StatusStopped, nil, "installed: yes\nstopped\n", 1},
		{"not installed", service.StatusUnknown, service.ErrNotInstalled, "installed: no\nstopped\n", 1},
		{"failed", service.StatusUnknown, errors.New("service in failed state"), "installed: yes\nunknown\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fh := &fakeHost{svc: &fakeService{status: tc.status, err: tc.err}, denied: errors.New(privilegeHint)}
			// Nothing answers at --admin: the agent's own state is unknown.
			out, stderr, code := runService(t, fh.host(), "status", "--admin", "127.0.0.1:1")
			if out != tc.out || code != tc.code {
				t.Errorf("got %q exit %d, want %q exit %d (stderr %q)", out, code, tc.out, tc.code, stderr)
			}
			if tc.err != nil && !errors.Is(tc.err, service.ErrNotInstalled) && !strings.Contains(stderr, tc.err.Error()) {
				t.Errorf("stderr does not give the reason: %q", stderr)
			}
		})
	}
}

func TestControl(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status service.Status
		err    error
		denied error
		calls  []string
		code   int
		stderr string
	}{
		{[]string{"start"}, service.StatusStopped, nil, nil, []string{"start"}, 0, ""},
		{[]string{"start"}, service.StatusRunning, nil, nil, nil, 0, ""},
		{[]string{"stop"}, service.StatusRunning, nil, nil, []string{"stop"}, 0, ""},
		{[]string{"stop"}, service.StatusStopped, nil, nil, nil, 0, ""},
		{[]string{"restart"}, service.StatusRunning, nil, nil, []string{"restart"}, 0, ""},
		{[]string{"restart"}, service.StatusStopped, nil, nil, []string{"start"}, 0, ""},
		{[]string{"uninstall"}, service.StatusRunning, nil, nil, []string{"stop", "uninstall"}, 0, ""},
		{[]string{"uninstall"}, service.StatusStopped, nil, nil, []string{"uninstall"}, 0, ""},
		{[]string{"start"}, service.StatusUnknown, service.ErrNotInstalled, nil, nil, 1, "not installed; install it with: oxbroker service install"},
		{[]string{"uninstall"}, service.StatusUnknown, service.ErrNotInstalled, nil, nil, 1, "not installed"},
		{[]string{"stop"}, service.StatusRunning, nil, errors.New(privilegeHint), nil, 1, "service stop " + privilegeHint},
		{[]string{"start", "now"}, service.StatusStopped, nil, nil, nil, 2, "takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " ")+"/"+fmt.Sprint(tc.status, tc.err, tc.denied), func(t *testing.T) {
			fh := &fakeHost{svc: &fakeService{status: tc.status, err: tc.err}, denied: tc.denied}
			_, stderr, code := runService(t, fh.host(), tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if !slices.Equal(fh.svc.calls, tc.calls) {
				t.Errorf("calls: got %v, want %v", fh.svc.calls, tc.calls)
			}
		})
	}
}

// TestActionErrorPermission: a refusal for lack of rights says how to
// get them, and the cause stays reachable with errors.Is.
func TestActionErrorPermission(t *testing.T) {
	err := actionError("install", &fs.PathError{Op: "open", Path: "/etc/systemd/system/oxbroker.service", Err: fs.ErrPermission})
	if !strings.Contains(err.Error(), privilegeHint) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("got %v, want %q and fs.ErrPermission", err, privilegeHint)
	}
}
