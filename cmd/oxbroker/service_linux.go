package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"

	"github.com/kardianos/service"

	"github.com/oxsecurity/oxbroker/config"
)

const logHint = "journalctl -u oxbroker -f"

// serviceAccount is the user the unit runs as when it exists.
const serviceAccount = "oxbroker"

// serviceUser is serviceAccount if that user exists, else "" (root).
func serviceUser() string {
	if _, err := user.Lookup(serviceAccount); err == nil {
		return serviceAccount
	}
	return ""
}

// systemdUnitTemplate is the unit install writes. The sandbox options are
// those the agent works under: it only dials out (IPv4, IPv6, and Unix
// sockets for the resolver), needs no capability, and writes nothing but
// state_dir.
var systemdUnitTemplate = template.Must(template.New("oxbroker.service").Funcs(template.FuncMap{
	"exec": func(s string) string { return unitQuote(s, true) },
	"path": func(s string) string { return unitQuote(s, false) },
}).Parse(`# Written by "oxbroker service install": uninstall and install again rather than
# edit it, or add settings with "systemctl edit oxbroker".
# ` + serviceDescription + `.
[Unit]
Description=` + serviceDisplayName + `
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
WatchdogSec=30s
ExecStart={{exec .Exe}} run --config {{exec .Config}}
ExecReload=/bin/sh -c "kill -HUP $MAINPID"
Restart=always
RestartSec=5
{{if .User}}User={{.User}}
{{end -}}
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths={{path .StateDir}}
{{range .Credentials}}LoadCredential{{if .Encrypted}}Encrypted{{end}}={{.Name}}:{{.Path}}
{{end -}}
CapabilityBoundingSet=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
`))

// systemdUnit renders the unit for p.
func systemdUnit(p installPlan) (string, error) {
	for _, s := range []string{p.Exe, p.Config, p.StateDir, p.User} {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
			return "", fmt.Errorf("%q cannot go into a systemd unit: it holds a quote, a backslash or a control character", s)
		}
	}
	for _, c := range p.Credentials {
		// LoadCredential= takes no quotes: the path must be one plain word.
		if unitQuote(c.Path, false) != c.Path || strings.Contains(c.Path, "%") {
			return "", fmt.Errorf("credential %s: %q cannot go into a systemd unit: keep to letters, digits and /._+:@,=- in its path", c.Name, c.Path)
		}
	}
	var b strings.Builder
	if err := systemdUnitTemplate.Execute(&b, p); err != nil {
		return "", err
	}
	return b.String(), nil
}

// unitQuote writes s as one word of a unit file: systemd splits at white
// space, expands % specifiers everywhere and, in Exec lines, $VARIABLES.
// systemdUnit has refused quotes, backslashes and control characters.
func unitQuote(s string, exec bool) string {
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._+:@,=-", r))
	})
	s = strings.ReplaceAll(s, "%", "%%")
	if exec {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	if plain {
		return s
	}
	return `"` + s + `"`
}

// kardianosLiteral makes text come out unchanged from kardianos, which
// executes the SystemdScript option as a text/template.
func kardianosLiteral(text string) string {
	return strings.ReplaceAll(text, "{{", `{{"{{"}}`)
}

// platformInstall hands kardianos the whole unit, so that what install
// writes is exactly what systemdUnit renders (and the golden file shows).
func platformInstall(p installPlan) (service.KeyValue, []string, error) {
	unit, err := systemdUnit(p)
	if err != nil {
		return nil, nil, err
	}
	notes := []string{"unit: /etc/systemd/system/" + serviceName + ".service (enabled: starts at boot)"}
	if p.User == "" {
		notes = append(notes, "runs as root, sandboxed: there is no user "+serviceAccount+". To run it unprivileged:",
			"  sudo useradd --system --no-create-home --shell /usr/sbin/nologin "+serviceAccount,
			"  let it read the config and token files, then: sudo oxbroker service uninstall && sudo oxbroker service install --config "+p.Config)
	} else {
		notes = append(notes, "runs as user "+p.User+": it must be able to read "+p.Config+" and the token files it names")
	}
	return service.KeyValue{"SystemdScript": kardianosLiteral(unit)}, notes, nil
}

// checkManager refuses a Linux without systemd: the unit, its sandbox
// and its logs are systemd's; kardianos would fall back to an init script.
func checkManager() error {
	if sys := service.ChosenSystem(); sys == nil || sys.String() != "linux-systemd" {
		name := "no service manager"
		if sys != nil {
			name = sys.String()
		}
		return fmt.Errorf("oxbroker service supports systemd only on Linux, and this system has %s; "+
			"run \"oxbroker run --config FILE\" under your init system instead", name)
	}
	return nil
}

// prepareInstall refuses files the sandbox would hide, then creates
// state_dir: the unit's ReadWritePaths must exist for the service to
// start, and with ProtectSystem=strict the agent could not create it.
func prepareInstall(p installPlan) error {
	if errs := sandboxProblems(p); len(errs) > 0 {
		return fmt.Errorf("the service's sandbox would hide these files; move them (for example to /usr/local/bin and /etc/oxbroker):\n%w", errs)
	}
	return prepareStateDir(p.StateDir, p.User)
}

// hiddenBySandbox are the folders the unit hides: ProtectHome=yes makes
// the first three inaccessible, PrivateTmp=yes gives the service its own
// empty /tmp and /var/tmp.
var hiddenBySandbox = []string{"/home", "/root", "/run/user", "/tmp", "/var/tmp"}

func sandboxProblems(p installPlan) config.Errors {
	var errs config.Errors
	for _, f := range p.Files {
		for _, dir := range hiddenBySandbox {
			if f.Path == dir || strings.HasPrefix(f.Path, dir+"/") {
				errs = append(errs, config.FieldError{Path: f.Key, Message: fmt.Sprintf("%s is under %s, which the service does not see", f.Path, dir)})
			}
		}
	}
	return errs
}

// prepareStateDir creates dir for the service's user. An existing dir
// is left as it is, but refused if the service's user does not own it.
func prepareStateDir(dir, username string) error {
	uid, gid := 0, 0
	if username != "" {
		u, err := user.Lookup(username)
		if err != nil {
			return fmt.Errorf("user %s: %w", username, err)
		}
		if uid, err = strconv.Atoi(u.Uid); err == nil {
			gid, err = strconv.Atoi(u.Gid)
		}
		if err != nil {
			return fmt.Errorf("user %s: %w", username, err)
		}
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		if err := os.Mkdir(dir, 0o750); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("state_dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("state_dir: %s is not a folder", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && username != "" && int(st.Uid) != uid {
		return fmt.Errorf("state_dir %s exists and is not owned by %s, which the service runs as; fix with: sudo chown -R %s: %s",
			dir, username, username, dir)
	}
	return nil
}

// stageCredentials puts each credential, as systemd will hand it to the
// service, into a private folder under /run (a tmpfs, so a decrypted
// token never reaches a disk), for install to validate the config that
// reads ${CREDENTIALS_DIRECTORY}/NAME. It marks those systemd-creds made
// as Encrypted and decrypts them with systemd-creds, which refuses a
// wrong name or key as the service's start would. cleanup removes the
// folder.
func stageCredentials(creds []credential) (dir string, cleanup func(), err error) {
	cleanup = func() {}
	if len(creds) == 0 {
		return "", cleanup, nil
	}
	// /run is writable by root only; a test run by a user gets TMPDIR.
	if dir, err = os.MkdirTemp("/run", "oxbroker-credentials-"); err != nil {
		if dir, err = os.MkdirTemp("", "oxbroker-credentials-"); err != nil {
			return "", cleanup, fmt.Errorf("--credential: %w", err)
		}
	}
	cleanup = func() { os.RemoveAll(dir) }
	for i := range creds {
		c := &creds[i]
		data, err := os.ReadFile(c.Path)
		if err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("--credential %s: %w", c.Name, err)
		}
		out := filepath.Join(dir, c.Name)
		if c.Encrypted = looksEncrypted(data); c.Encrypted {
			cmd := exec.Command("systemd-creds", "decrypt", "--name="+c.Name, c.Path, out)
			if msg, err := cmd.CombinedOutput(); err != nil {
				cleanup()
				return "", func() {}, fmt.Errorf("--credential %s: %s was made by systemd-creds encrypt, and systemd-creds decrypt --name=%s refuses it: %v\n%s",
					c.Name, c.Path, c.Name, err, strings.TrimSpace(string(msg)))
			}
			if err := os.Chmod(out, 0o400); err != nil {
				cleanup()
				return "", func() {}, err
			}
			continue
		}
		if err := os.WriteFile(out, data, 0o400); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("--credential %s: %w", c.Name, err)
		}
	}
	return dir, cleanup, nil
}
