//go:build linux

package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// container is a Debian root file system booted with systemd-nspawn. It
// shares the host's network; the test reaches inside through nsenter.
type container struct {
	root    string    // the root file system, a copy of the cached one
	nspawn  *exec.Cmd // systemd-nspawn
	console *bytes.Buffer
	exited  chan struct{} // closed when nspawn has exited
	pid     int           // the container's systemd, as the host sees it
}

// boot copies the cached root file system and boots it; Cleanup powers
// it off, and prints the journal when the test failed. A container that
// does not finish booting is booted once more from a fresh copy, after
// its state, pending jobs and journal are logged: the boot is this
// test's scaffolding, not what it tests, and one CI run saw a boot stall
// that no later run reproduced.
func boot(t *testing.T, cached string) *container {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := bootOnce(t, cached)
		if err == nil {
			t.Cleanup(func() { c.powerOff(t) })
			t.Cleanup(func() {
				if t.Failed() {
					c.logState(t, "")
				}
			})
			return c
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("%v; booting a fresh copy once more", err)
	}
}

// bootOnce boots a copy of cached and waits for its systemd to finish
// booting; when it does not, it logs why, powers the container off and
// returns an error.
func bootOnce(t *testing.T, cached string) (*container, error) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	run(t, "", "cp", "-a", "--reflink=auto", cached, root)
	c := &container{root: root, console: &bytes.Buffer{}, exited: make(chan struct{})}
	c.nspawn = exec.Command("systemd-nspawn", "-D", root, "--register=no", "--keep-unit", "--quiet",
		"/lib/systemd/systemd", "--system")
	c.nspawn.Stdout, c.nspawn.Stderr = c.console, c.console
	// Should the test process die, nspawn powers the container off.
	c.nspawn.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.nspawn.Wait()
		close(c.exited)
	}()
	exited := false
	if _, ok := testwait.Until(60*time.Second, func() bool {
		select {
		case <-c.exited:
			exited = true
			return true
		default:
		}
		c.pid = containerInit(c.nspawn.Process.Pid)
		return c.pid != 0
	}); exited || !ok {
		c.powerOff(t)
		return nil, fmt.Errorf("systemd-nspawn did not start the container's systemd in 60 s (exited: %v):\n%s", exited, c.console)
	}
	// Until its bus is up, systemctl cannot even ask.
	var state string
	took, ok := testwait.Until(90*time.Second, func() bool {
		out, err := c.exec("", "systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(out)
		if err != nil && state == "" {
			state = err.Error()
		}
		return state == "running" || state == "degraded"
	})
	if !ok {
		c.logState(t, state)
		c.powerOff(t)
		return nil, fmt.Errorf("the container did not finish booting in %s (its state: %q)", took.Round(time.Second), state)
	}
	if state != "running" {
		failed, _ := c.exec("", "systemctl", "--failed", "--no-pager")
		t.Logf("the container's system is %s:\n%s", state, failed)
	}
	return c, nil
}

// logState logs what the container's systemd is waiting for and its
// journal's end.
func (c *container) logState(t *testing.T, state string) {
	t.Helper()
	if state == "" {
		state, _ = c.exec("", "systemctl", "is-system-running")
	}
	jobs, _ := c.exec("", "systemctl", "list-jobs", "--no-pager")
	j, _ := c.exec("", "journalctl", "--no-pager", "-n", "300", "-o", "short-monotonic")
	t.Logf("the container's system is %s; its pending jobs:\n%s\nits journal, last 300 lines:\n%s",
		strings.TrimSpace(state), jobs, j)
}

// containerInit is the container's systemd, as the host sees it: nspawn's
// child once it has exec'd systemd; 0 until then. Before the exec the
// child is still systemd-nspawn setting the container up, and nsenter
// into it may join namespaces that are not yet the container's.
func containerInit(nspawn int) int {
	pid := childPID(nspawn)
	if pid == 0 {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		return 0
	}
	return pid
}

// childPID is the first child of pid, 0 while it has none.
func childPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// powerOff asks nspawn to shut the container down (it passes SIGTERM on
// as a clean power-off) and kills it if that takes too long.
func (c *container) powerOff(t *testing.T) {
	c.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Errorf("the container did not power off in 60 s; killing it")
		c.nspawn.Process.Kill()
		<-c.exited
	}
}

// exec runs argv inside the container, with stdin, and returns its
// combined output.
func (c *container) exec(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"--target", strconv.Itoa(c.pid), "--all", "--",
		"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out.String(), err
}

// sh runs a shell script inside the container and fails the test if it
// fails.
func (c *container) sh(t *testing.T, script string) string {
	t.Helper()
	return c.shIn(t, "", script)
}

// shIn is sh with stdin.
func (c *container) shIn(t *testing.T, stdin, script string) string {
	t.Helper()
	out, err := c.exec(stdin, "/bin/sh", "-euc", script)
	if err != nil {
		t.Fatalf("in the container: %v\n$ %s\n%s", err, script, out)
	}
	return out
}

// put writes a file of the host into the container's /srv/live, which
// the scripts then install where it goes (nspawn mounts a tmpfs on /tmp
// inside, so files cannot be passed through there).
func (c *container) put(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir := filepath.Join(c.root, "srv", "live")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return "/srv/live/" + name
}

// putFile is put with the content of a host file.
func (c *container) putFile(t *testing.T, name, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return c.put(t, name, data)
}

// prop is one property of a unit (systemctl show -p).
func (c *container) prop(t *testing.T, unit, name string) string {
	t.Helper()
	return strings.TrimSpace(c.sh(t, "systemctl show --value -p "+name+" "+unit))
}

// active is systemctl is-active's answer.
func (c *container) active(unit string) string {
	out, _ := c.exec("", "systemctl", "is-active", unit)
	return strings.TrimSpace(out)
}

// journal is what unit logged, message only.
func (c *container) journal(t *testing.T, unit string) string {
	t.Helper()
	return c.sh(t, "journalctl --no-pager -o cat -u "+unit)
}

// waitJournal waits until unit has logged text at least n times.
func (c *container) waitJournal(t *testing.T, unit, text string, n int) {
	t.Helper()
	testwait.For(t, 60*time.Second, fmt.Sprintf("%d× %q in the journal of %s", n, text, unit), func() bool {
		return strings.Count(c.journal(t, unit), text) >= n
	})
}

// exposure is systemd-analyze security's overall exposure of the running unit.
func (c *container) exposure(t *testing.T, unit string) float64 {
	t.Helper()
	out := c.sh(t, "systemd-analyze security --no-pager "+unit)
	m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(unit) + `: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no overall exposure:\n%s", unit, out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security %s (running): %.1f", unit, score)
	return score
}

// sandboxDenial matches what a unit's journal shows when its sandbox
// refuses it something: an errno of the file system or seccomp, or
// systemd reporting a kill by SIGSYS.
var sandboxDenial = regexp.MustCompile(`(?i)permission denied|operation not permitted|read-only file system|bad system call|SIGSYS|status=31|code=dumped|seccomp|apparmor`)

// noSandboxDenial fails the test if unit's journal shows a denial.
func (c *container) noSandboxDenial(t *testing.T, unit string) {
	t.Helper()
	var bad []string
	for _, line := range strings.Split(c.journal(t, unit), "\n") {
		if sandboxDenial.MatchString(line) {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the journal of %s shows sandbox denials:\n%s", unit, strings.Join(bad, "\n"))
	}
}

// run runs a host command in dir and fails the test if it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
		}
		t.Fatal(err)
	}
	return out.String()
}
