package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"

	"github.com/oxsecurity/oxbroker/cmd/internal/cli"
	"github.com/oxsecurity/oxbroker/config"
)

// The service as the system's service manager knows it.
const (
	serviceName        = "oxbroker"
	serviceDisplayName = "OX Broker agent"
	serviceDescription = "Lets OX reach Jira without holding its token or opening an inbound port"
)

// serviceHost is the machine the service commands act on. serviceCmd uses the
// real one; tests pass fakes so that they neither need root nor register
// a service.
type serviceHost struct {
	// open returns the system's service manager for cfg.
	open func(cfg *service.Config) (service.Service, error)
	// privileged returns an error when this process may not install or
	// control services.
	privileged func() error
	// prepare checks and readies the machine for p just before the
	// service is registered (see prepareInstall in the OS files).
	prepare func(p installPlan) error
}

// installPlan is what install registers: the service runs
// "Exe run --config Config".
type installPlan struct {
	Exe      string // absolute path of this executable
	Config   string // absolute path of the agent's config
	StateDir string // the config's state_dir, the one folder the service writes
	User     string // account the service runs as; "" is the system's default (root, LocalSystem)
	// Credentials are the systemd credentials the unit loads (Linux).
	Credentials []credential
	// Files are the files the service reads, by key path: the executable,
	// the config and the files the config names.
	Files []keyPath
}

// keyPath is a path and the config key (or flag) it comes from.
type keyPath struct{ Key, Path string }

// configFiles are the files and folders cfg names.
func configFiles(cfg *config.Agent) []keyPath {
	files := []keyPath{{"broker.token_file", cfg.Broker.TokenFile}, {"state_dir", cfg.StateDir}, {"gateway.ca_file", cfg.Gateway.CAFile}}
	for i, s := range cfg.Sites {
		files = append(files,
			keyPath{fmt.Sprintf("sites[%d].auth.token_file", i), s.Auth.TokenFile},
			keyPath{fmt.Sprintf("sites[%d].tls.ca_file", i), s.TLS.CAFile})
	}
	return files
}

func serviceCmd() *cobra.Command {
	return newServiceCmd(serviceHost{
		open: func(cfg *service.Config) (service.Service, error) {
			if err := checkManager(); err != nil {
				return nil, err
			}
			return service.New(noProgram{}, cfg)
		},
		privileged: checkPrivileged,
		prepare:    prepareInstall,
	})
}

// noProgram is the program of a service that this process only installs
// or controls; it never runs it.
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

func newServiceCmd(h serviceHost) *cobra.Command {
	c := &cobra.Command{
		Use:   "service",
		Short: "Install and control oxbroker as a system service (systemd, Windows SCM, launchd)",
		Long: `Installs oxbroker as a system service that starts at boot and is restarted when it
fails, and starts, stops and inspects that service. The service runs
  <this executable> run --config <config>
with both paths made absolute, so put the binary where it will stay (for example
/usr/local/bin/oxbroker or C:\Program Files\OXBroker\oxbroker.exe) before installing.

install, uninstall, start, stop and restart change the system: run them as root
(sudo) on Linux and macOS, or from an elevated prompt ("Run as administrator") on
Windows. status needs no privileges (on macOS it does: see status --help).

Where the service is registered, and where its logs go:
  Linux (systemd)   /etc/systemd/system/oxbroker.service
                    logs: journalctl -u oxbroker -f
  Windows (SCM)     service "oxbroker" ("OX Broker agent" in services.msc)
                    logs: Event Viewer > Windows Logs > Application, source "oxbroker"
  macOS (launchd)   /Library/LaunchDaemons/oxbroker.plist
                    logs: /var/log/oxbroker.err.log

The running agent reloads its config by itself when the file or a token file
changes (on Linux also: sudo systemctl reload oxbroker). After replacing the binary
in place (an upgrade), restart the service; after moving the binary or the config,
uninstall and install again.

First installation on Linux:
  sudo useradd --system --no-create-home --shell /usr/sbin/nologin oxbroker   # optional, see install --help
  sudo oxbroker config validate --config /etc/oxbroker/config.yaml
  sudo oxbroker service install --config /etc/oxbroker/config.yaml
  sudo oxbroker service start
  oxbroker service status
  journalctl -u oxbroker -f

On Windows, from an elevated prompt (the config defaults to %ProgramData%\OXBroker\config.yaml):
  oxbroker.exe service install
  oxbroker.exe service start
  oxbroker.exe service status`,
	}
	c.AddCommand(installCmd(h), uninstallCmd(h),
		controlCmd(h, "start", "Start the installed service"),
		controlCmd(h, "stop", "Stop the service; in-flight Jira requests finish first"),
		controlCmd(h, "restart", "Stop the service if it runs, then start it"),
		statusCmd(h))
	return cli.Group(c)
}

func installCmd(h serviceHost) *cobra.Command {
	var (
		path  string
		creds []string
	)
	c := &cobra.Command{
		Use:   "install",
		Short: "Validate the config and register the service to start at boot (needs root/Administrator)",
		Long: `Validates the config first and refuses to install a broken one: it prints one
"key.path: message" line per problem (as "oxbroker config validate" does) and exits 1.
It then registers the service to start at boot and to restart when it fails. It does
not start it: run "oxbroker service start" next.

The service runs "<this executable> run --config <config>", both as absolute paths.
Paths inside the config (token_file, ca_file, state_dir) must be absolute too: the
service does not start in the folder you install from, and it does not see the
environment variables of your shell, so prefer token_file to token: ${VAR}.

Linux (systemd): writes /etc/systemd/system/oxbroker.service and enables it. With
--credential NAME=FILE the unit loads FILE as the systemd credential NAME
(LoadCredentialEncrypted= when systemd-creds encrypt made FILE, else LoadCredential=),
and the config reads it as token_file: ${CREDENTIALS_DIRECTORY}/NAME: the token then
sits on disk only encrypted, or readable by root only. Install decrypts it once, with
systemd-creds, to validate the config as the service will see it. The
unit runs as user oxbroker when that user exists (create it first, and let it read
the config and token files), otherwise as root. Either way the unit is sandboxed:
the file system is read-only except state_dir, which install creates, and /home,
/root and /tmp are hidden, so the binary, the config and the files it names must
live elsewhere (for example /usr/local/bin and /etc/oxbroker). Logs:
journalctl -u oxbroker -f

Windows (SCM): registers service "oxbroker" as LocalSystem, started automatically,
restarted 5 seconds after a failure; logs go to the Application event log. The
default config is %ProgramData%\OXBroker\config.yaml, never a per-user path, as
the service does not see the installer's profile.

macOS (launchd): writes /Library/LaunchDaemons/oxbroker.plist (RunAtLoad,
KeepAlive); logs go to /var/log/oxbroker.err.log.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return installService(c, h, path, creds) },
	}
	configFlag(c, &path)
	c.Flags().StringArrayVar(&creds, "credential", nil, "NAME=FILE: a systemd credential the unit loads, which the config reads as "+
		"${CREDENTIALS_DIRECTORY}/NAME; FILE is plain (root-only) or made by systemd-creds encrypt (Linux; repeatable)")
	return c
}

// installService validates the config before it asks anything of the system.
func installService(c *cobra.Command, h serviceHost, path string, credFlags []string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("config path %s: %w", path, err)
	}
	var creds []credential
	for _, f := range credFlags {
		cr, err := parseCredential(f)
		if err != nil {
			return cli.UsageError{Err: err}
		}
		creds = append(creds, cr)
	}
	// The config is validated with the credentials as the service will
	// see them, in ${CREDENTIALS_DIRECTORY}.
	credDir, cleanup, err := stageCredentials(creds)
	if err != nil {
		return err
	}
	defer cleanup()
	withCreds := func(lookup func(string) (string, bool)) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == credentialsEnv && credDir != "" {
				return credDir, true
			}
			return lookup(k)
		}
	}
	cfg, err := config.LoadAgent(abs, withCreds(secrets.lookup(os.LookupEnv)))
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "%s:\n%v\nnot installed: fix the config first\n", abs, err)
		return cli.Reported(err)
	}
	if errs := serviceProblems(cfg); len(errs) > 0 {
		fmt.Fprintf(c.ErrOrStderr(), "%s:\n%v\nnot installed: the service cannot use this config\n", abs, errs)
		return cli.Reported(errs)
	}
	printWarnings(c.ErrOrStderr(), abs, cfg)
	warnEnvironment(c.ErrOrStderr(), abs, withCreds(secrets.lookup(func(string) (string, bool) { return "", false })))
	if err := h.privileged(); err != nil {
		return fmt.Errorf("service install %w", err)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err != nil {
		return fmt.Errorf("path of this executable: %w", err)
	}
	p := installPlan{Exe: exe, Config: abs, StateDir: cfg.StateDir, User: serviceUser(), Credentials: creds,
		Files: append([]keyPath{{"executable", exe}, {"--config", abs}}, configFiles(cfg)...)}
	opts, notes, err := platformInstall(p)
	if err != nil {
		return err
	}
	s, err := h.open(&service.Config{
		Name:        serviceName,
		DisplayName: serviceDisplayName,
		Description: serviceDescription,
		UserName:    p.User,
		Executable:  p.Exe,
		Arguments:   []string{"run", "--config", p.Config},
		Option:      opts,
	})
	if err != nil {
		return err
	}
	if _, err := s.Status(); err == nil {
		return fmt.Errorf("service %s is already installed; to change it run: oxbroker service uninstall, then install again", serviceName)
	}
	if err := h.prepare(p); err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		return actionError("install", err)
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "installed service %s (%s)\n  runs: %s run --config %s\n", serviceName, s.Platform(), p.Exe, p.Config)
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprintf(w, "start it with: oxbroker service start\nlogs: %s\n", logHint)
	return nil
}

// serviceProblems are what makes a config that loads unusable by a
// service: relative paths, which the service would resolve against its
// own working folder (/ or C:\Windows\System32), not the installer's.
func serviceProblems(cfg *config.Agent) config.Errors {
	var errs config.Errors
	for _, f := range configFiles(cfg) {
		if f.Path != "" && !filepath.IsAbs(f.Path) {
			errs = append(errs, config.FieldError{Path: f.Key, Message: fmt.Sprintf(
				"%q is a relative path; the service does not run in this folder, give an absolute path", f.Path)})
		}
	}
	return errs
}

// warnEnvironment warns when the config only loads with this shell's
// environment (${VAR} or OXBROKER_* overrides), which the service does
// not inherit; serviceEnv is what the service does see.
func warnEnvironment(w io.Writer, path string, serviceEnv func(string) (string, bool)) {
	if _, err := config.LoadAgent(path, serviceEnv); err != nil {
		fmt.Fprintf(w, "warning: the service does not see this shell's environment, and without it the config fails:\n%v\n"+
			"use token_file instead of ${VAR}, or give the service the variables (Linux: sudo systemctl edit oxbroker)\n", err)
	}
}

func uninstallCmd(h serviceHost) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Stop the service if it runs and unregister it (needs root/Administrator)",
		Long: `Stops the service if it runs, then removes it from the service manager (Linux: disables
and deletes /etc/systemd/system/oxbroker.service). The binary, the config and state_dir
are left in place.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := openInstalled(h, "uninstall")
			if err != nil {
				return err
			}
			if st == service.StatusRunning {
				if err := s.Stop(); err != nil {
					return actionError("stop", err)
				}
			}
			if err := s.Uninstall(); err != nil {
				return actionError("uninstall", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "uninstalled service %s\n", serviceName)
			return nil
		},
	}
}

// controlCmd is start, stop or restart. Each is idempotent: starting a
// running service or stopping a stopped one succeeds, as scripts expect.
func controlCmd(h serviceHost, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action,
		Short: short + " (needs root/Administrator)",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := openInstalled(h, action)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			switch {
			case action == "start" && st == service.StatusRunning:
				fmt.Fprintf(w, "service %s is already running\n", serviceName)
				return nil
			case action == "stop" && st == service.StatusStopped:
				fmt.Fprintf(w, "service %s is already stopped\n", serviceName)
				return nil
			case action == "restart" && st == service.StatusStopped:
				// Some managers (Windows) refuse to stop a stopped service.
				action = "start"
			}
			var do func() error
			switch action {
			case "start":
				do = s.Start
			case "stop":
				do = s.Stop
			default:
				do = s.Restart
			}
			if err := do(); err != nil {
				return actionError(action, err)
			}
			fmt.Fprintf(w, "service %s: %s done\nstatus: oxbroker service status; logs: %s\n", serviceName, action, logHint)
			return nil
		},
	}
}

func statusCmd(h serviceHost) *cobra.Command {
	var path, admin string
	c := &cobra.Command{
		Use:   "status",
		Short: "Print whether the service is installed and running, and whether the agent is connected; exit 0 only if it runs and is not cut off",
		Long: `Prints the service manager's state and the running agent's own:
  installed: yes|no
  running, connected | running, not connected: <cause> Fix: <fix> | stopped | unknown
then, indented, a line for each site that is down or failed its check (with the
cause and the fix). The agent's state comes from its admin listener's /readyz
(admin.listen of --config, or --admin; 127.0.0.1:9108 when the config cannot be
read). When the agent cannot be asked (admin.listen is off), the second line is
just "running" and stderr says why.

Exits 0 when the service is running and not known to be cut off from the
gateway, 1 otherwise (stopped, not installed, its state unreadable, or running
but not connected), so that a script can write
  oxbroker service status >/dev/null || alert "oxbroker is down"
Needs no privileges, except on macOS, where launchctl shows a daemon's state only
to root: use sudo there, or a running daemon reads as stopped. For details:
systemctl status oxbroker (Linux), sc query oxbroker (Windows), sudo launchctl list
oxbroker (macOS).`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := h.open(&service.Config{Name: serviceName, DisplayName: serviceDisplayName})
			if err != nil {
				return err
			}
			st, err := s.Status()
			installed, state := "yes", "unknown"
			switch {
			case errors.Is(err, service.ErrNotInstalled):
				installed, state = "no", "stopped"
			case err != nil:
				// The manager knows the service but not its state, as
				// systemd for a unit in the failed state.
				fmt.Fprintf(c.ErrOrStderr(), "service %s: %v\n", serviceName, err)
			case st == service.StatusRunning:
				state = "running"
			case st == service.StatusStopped:
				state = "stopped"
			}
			if state != "running" {
				fmt.Fprintf(c.OutOrStdout(), "installed: %s\n%s\n", installed, state)
				return cli.Reported(errNotRunning)
			}
			if admin == "" {
				if admin, err = adminAddr(path); err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "asking the agent at %s: admin.listen is unreadable: %v\n", admin, err)
				}
			}
			var as agentState
			if admin == "" {
				fmt.Fprintf(c.ErrOrStderr(), "the agent's own state is unknown: admin.listen is off in %s\n", path)
			} else if as, err = askAgent(c.Context(), admin); err != nil {
				fmt.Fprintf(c.ErrOrStderr(), "the agent's own state is unknown: %v\n", err)
			}
			if as.known {
				state += ", " + as.line
			}
			fmt.Fprintf(c.OutOrStdout(), "installed: %s\n%s\n", installed, state)
			for _, site := range as.sites {
				fmt.Fprintf(c.OutOrStdout(), "  %s\n", site)
			}
			if as.known && !as.connected {
				return cli.Reported(errNotConnected)
			}
			return nil
		},
	}
	configFlag(c, &path)
	c.Flags().StringVar(&admin, "admin", "", "host:port of the agent's admin listener (default: admin.listen of --config)")
	return c
}

// errNotConnected: the service runs, but the agent has no tunnel up.
var errNotConnected = errors.New("the agent is not connected to the gateway")

var errNotRunning = errors.New("service is not running")

// openInstalled opens the service manager for action (stop, uninstall…) and
// refuses a service that is not installed, with the command that installs
// it, then a user without the rights to act on it.
func openInstalled(h serviceHost, action string) (service.Service, service.Status, error) {
	s, err := h.open(&service.Config{Name: serviceName, DisplayName: serviceDisplayName})
	if err != nil {
		return nil, 0, err
	}
	st, err := s.Status()
	if errors.Is(err, service.ErrNotInstalled) {
		return nil, 0, fmt.Errorf("service %s is not installed; install it with: oxbroker service install --config FILE", serviceName)
	}
	// Another error leaves the state unknown; the action itself may still work.
	if err := h.privileged(); err != nil {
		return nil, 0, fmt.Errorf("service %s %w", action, err)
	}
	return s, st, nil
}

// actionError names the action and, when the manager refused for lack of
// rights, says how to get them.
func actionError(action string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("service %s %s (%w)", action, privilegeHint, err)
	}
	return fmt.Errorf("service %s: %w (logs: %s)", action, err, logHint)
}
