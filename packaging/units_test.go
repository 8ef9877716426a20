package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unit is a systemd unit file: section -> key -> values, in file order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section := unit{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read line %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// strict is set where the packaging checks must run rather than skip:
// "make package-test" (CI) sets OXBROKER_DIST.
func strict() bool { return os.Getenv("OXBROKER_DIST") != "" }

// need skips the test when tool is not installed, or fails it in strict mode.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if strict() {
			t.Fatalf("%s is not installed (.ci/run installs it)", tool)
		}
		t.Skipf("%s is not installed; .ci/run installs it", tool)
	}
	return p
}

// TestUnitAgreesWithServiceInstall keeps the packaged unit and the one
// "oxbroker service install" writes the same but for the binary's path.
func TestUnitAgreesWithServiceInstall(t *testing.T) {
	pkg := readUnit(t, filepath.Join("linux", "oxbroker.service"))
	cmd := readUnit(t, filepath.Join("..", "cmd", "oxbroker", "testdata", "oxbroker.service"))
	const args = " run --config /etc/oxbroker/config.yaml"
	if got, want := pkg["Service"]["ExecStart"], []string{"/usr/bin/oxbroker" + args}; !slices.Equal(got, want) {
		t.Errorf("packaged ExecStart: got %q, want %q", got, want)
	}
	if got, want := cmd["Service"]["ExecStart"], []string{"/usr/local/bin/oxbroker" + args}; !slices.Equal(got, want) {
		t.Errorf("service install's ExecStart: got %q, want %q", got, want)
	}
	delete(pkg["Service"], "ExecStart")
	delete(cmd["Service"], "ExecStart")
	for _, section := range []string{"Unit", "Service", "Install"} {
		for k, v := range cmd[section] {
			if !slices.Equal(pkg[section][k], v) {
				t.Errorf("[%s] %s: packaged unit has %q, service install writes %q", section, k, pkg[section][k], v)
			}
		}
		for k, v := range pkg[section] {
			if _, ok := cmd[section][k]; !ok {
				t.Errorf("[%s] %s=%q: only in the packaged unit; add it to cmd/oxbroker/service_linux.go too", section, k, v)
			}
		}
	}
}

// TestGatewayUnitSandbox: the gateway runs in the agent's sandbox, as its
// own user, minus what it does not use.
func TestGatewayUnitSandbox(t *testing.T) {
	agent := readUnit(t, filepath.Join("linux", "oxbroker.service"))
	gw := readUnit(t, filepath.Join("linux", "oxbroker-gateway.service"))
	want := map[string]string{
		"ExecStart": "/usr/bin/oxbroker-gateway run --config /etc/oxbroker-gateway/config.yaml",
		"User":      "oxbroker-gateway",
		// The gateway writes no file, and SIGHUP would end it.
		"ReadWritePaths": "",
		"ExecReload":     "",
		// Its READY=1 says the listeners are up; it has no watchdog.
		"WatchdogSec": "",
	}
	for k, v := range agent["Service"] {
		w, special := want[k]
		if !special {
			w = strings.Join(v, "\n")
		}
		if got := strings.Join(gw["Service"][k], "\n"); got != w {
			t.Errorf("gateway [Service] %s: got %q, want %q", k, got, w)
		}
	}
	for k := range gw["Service"] {
		if _, ok := agent["Service"][k]; !ok {
			t.Errorf("gateway [Service] %s: not in the agent's unit", k)
		}
	}
}

// verifiableCopy writes the unit at path to a temporary folder with its
// ExecStart binary replaced by exe, a file that exists, because
// systemd-analyze verify checks that the binary is there.
func verifiableCopy(t *testing.T, path, bin, exe string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "ExecStart="+bin+" ", "ExecStart="+exe+" ", 1)
	if s == string(data) {
		t.Fatalf("%s: no ExecStart=%s", path, bin)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyUnit(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command(need(t, "systemd-analyze"), "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(path), err, out)
	}
}

func TestUnitsVerify(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Packages {
		t.Run(name, func(t *testing.T) {
			verifyUnit(t, verifiableCopy(t, filepath.Join("linux", name+".service"), "/usr/bin/"+name, self))
		})
	}
}

// exposureRE reads systemd-analyze security's last line.
var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// maxExposure guards the units' sandbox from being loosened by accident:
// README.md records the scores (4.2 for both, with systemd 252).
const maxExposure = 4.5

// TestUnitsSecurity measures systemd's exposure score offline (no running
// systemd needed) and logs it.
func TestUnitsSecurity(t *testing.T) {
	sa := need(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Packages {
		t.Run(name, func(t *testing.T) {
			path := verifiableCopy(t, filepath.Join("linux", name+".service"), "/usr/bin/"+name, self)
			out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", path).CombinedOutput()
			m := exposureRE.FindSubmatch(out)
			if m == nil {
				// systemd before 250 has no --offline.
				t.Skipf("systemd-analyze security --offline: %v\n%s", err, out)
			}
			score, _ := strconv.ParseFloat(string(m[1]), 64)
			t.Logf("%s: exposure %.1f", name, score)
			if score > maxExposure {
				t.Errorf("%s: exposure %.1f, want at most %.1f: what loosened the sandbox?\n%s", name, score, maxExposure, out)
			}
		})
	}
}
