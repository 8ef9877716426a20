package packaging

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDebInstall installs each amd64 .deb into a throwaway root with
// "dpkg --root", scripts included, then upgrades, removes and purges it.
// The scripts run outside a chroot (--force-script-chrootless) and act on
// $DPKG_ROOT, so nothing on this machine changes. dpkg resolves the
// packaged owner names on this machine, not in the root, so owners are
// checked from the package's metadata (TestDebContents), modes here.
func TestDebInstall(t *testing.T) {
	d := distOrSkip(t)
	if os.Geteuid() != 0 {
		if strict() {
			t.Fatal("installing a .deb, even into a throwaway root, needs root")
		}
		t.Skip("installing a .deb, even into a throwaway root, needs root")
	}
	need(t, "dpkg")
	need(t, "systemctl") // the scripts enable the unit with it
	for _, pkg := range Packages {
		t.Run(pkg, func(t *testing.T) {
			root := newDpkgRoot(t)
			deb := d.path("%s_%s_linux_amd64.deb", pkg, d.version)
			unit := "/usr/lib/systemd/system/" + pkg + ".service"
			wants := "/etc/systemd/system/multi-user.target.wants/" + pkg + ".service"
			config := "/etc/" + pkg + "/config.yaml"

			out := dpkg(t, root, "--install", deb)
			if !strings.Contains(out, "enabled but not started") {
				t.Errorf("install did not say the service is left for the administrator to start:\n%s", out)
			}

			// The system user and group the preinst made.
			user := account(t, root, "passwd", pkg)
			if len(user) != 7 || user[5] != homes[pkg] || user[6] != "/usr/sbin/nologin" {
				t.Errorf("user %s: got %q, want home %s and shell /usr/sbin/nologin", pkg, user, homes[pkg])
			} else if uid, _ := strconv.Atoi(user[2]); uid <= 0 || uid >= 1000 {
				t.Errorf("user %s: uid %d, want a system uid", pkg, uid)
			}
			if group := account(t, root, "group", pkg); len(group) < 3 || len(user) < 4 || group[2] != user[3] {
				t.Errorf("group %s %q: want the user's primary group %q", pkg, group, user)
			}

			// Enabled, as a link to the packaged unit; started is not
			// something a throwaway root can show, so the postinst's
			// message above stands for it.
			if link, err := os.Readlink(filepath.Join(root, wants)); err != nil || link != unit {
				t.Errorf("%s: got %q (%v), want a link to %s", wants, link, err, unit)
			}
			bin := filepath.Join(root, "usr", "bin", pkg)
			verifyUnit(t, verifiableCopy(t, filepath.Join(root, unit), "/usr/bin/"+pkg, bin))

			if out := run1(t, bin, "version"); !strings.HasPrefix(out, pkg+" "+d.version+" (commit ") {
				t.Errorf("%s version: got %q, want %s %s (commit ...", pkg, out, pkg, d.version)
			}

			modes := map[string]fs.FileMode{"/etc/" + pkg: fs.ModeDir | 0o750, config: 0o640, "/usr/bin/" + pkg: 0o755, unit: 0o644}
			if pkg == "oxbroker" {
				modes["/var/lib/oxbroker"] = fs.ModeDir | 0o750
			}
			for p, want := range modes {
				if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Mode() != want {
					t.Errorf("%s: got %v (%v), want %v", p, modeOf(fi), err, want)
				}
			}

			// The config as shipped is the commented example, which the
			// service would refuse: it is not started until it is filled in.
			if pkg == "oxbroker" {
				want, err := AgentExample("..", "linux")
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(filepath.Join(root, config)); !bytes.Equal(got, want) {
					t.Errorf("%s is not the Linux example config (is dist/ older than packaging/config/? make package again)", config)
				}
				cmd := exec.Command(bin, "config", "validate", "--config", filepath.Join(root, config))
				if out, err := cmd.CombinedOutput(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
					t.Errorf("config validate of the example: got %v, want exit 1\n%s", err, out)
				}
			}

			// An upgrade keeps a config the administrator changed.
			mine := appendFile(t, filepath.Join(root, config), "# changed by the administrator\n")
			dpkg(t, root, "--install", deb)
			if got, _ := os.ReadFile(filepath.Join(root, config)); !bytes.Equal(got, mine) {
				t.Errorf("the upgrade replaced the changed %s", config)
			}
			if _, err := os.Lstat(filepath.Join(root, wants)); err != nil {
				t.Errorf("after the upgrade: %v", err)
			}

			// Removal keeps the config; purge removes it and the state.
			if pkg == "oxbroker" {
				appendFile(t, filepath.Join(root, "var/lib/oxbroker/agent-id"), "a1\n")
			}
			dpkg(t, root, "--remove", pkg)
			if _, err := os.Stat(bin); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after remove, %s: %v, want it gone", bin, err)
			}
			if got, _ := os.ReadFile(filepath.Join(root, config)); !bytes.Equal(got, mine) {
				t.Errorf("remove did not keep %s", config)
			}
			dpkg(t, root, "--purge", pkg)
			for _, p := range []string{config, wants, "/var/lib/oxbroker"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("after purge, %s: %v, want it gone", p, err)
				}
			}
		})
	}
}

// homes are the service users' home folders.
var homes = map[string]string{"oxbroker": "/var/lib/oxbroker", "oxbroker-gateway": "/nonexistent"}

// newDpkgRoot makes an empty root that dpkg --root and the scripts can
// work in: dpkg's database and the account files, with root alone.
func newDpkgRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":              "root:x:0:\n",
		"etc/shadow":             "root:*:20000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	return command(t, "", "dpkg", append([]string{"--root=" + root, "--log=/dev/null",
		"--force-not-root", "--force-script-chrootless"}, args...)...)
}

// account returns the fields of name's line in root's /etc/passwd or /etc/group.
func account(t *testing.T, root, file, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); f[0] == name {
			return f
		}
	}
	t.Errorf("no %s in /etc/%s:\n%s", name, file, data)
	return nil
}

func run1(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func appendFile(t *testing.T, path, s string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	data = append(data, s...)
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return data
}

func modeOf(fi fs.FileInfo) any {
	if fi == nil {
		return nil
	}
	return fi.Mode()
}
