package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a program under test, run as its own process with its output
// in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// startProc runs bin with args and only the environment given (plus PATH
// and HOME), so that the machine's proxy variables change nothing.
func (s *suite) startProc(name, bin string, env []string, args ...string) (*proc, error) {
	f, err := os.OpenFile(s.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, log: f, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.cfg.WorkDir}, env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); f.Close(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to 10 s, then kills.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// waitFile waits until path exists and is not empty, and returns its
// content without surrounding space.
func waitFile(ctx context.Context, p *proc, path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		if err := pause(ctx, p, 20*time.Millisecond); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%s did not write %s within %s", p.name, path, timeout)
}

// waitHTTP waits until GET url answers 200.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if err := pause(ctx, p, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: %s did not answer 200 within %s", p.name, url, timeout)
}

// pause waits d, failing early if ctx ends or p exits.
func pause(ctx context.Context, p *proc, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return fmt.Errorf("%s exited: %v (log: %s)", p.name, p.cmd.ProcessState, p.log.Name())
	case <-time.After(d):
		return nil
	}
}

// gatewaySessions reads oxbroker_gateway_sessions{transport} from the
// gateway's /metrics.
func gatewaySessions(c *http.Client, adminAddr, transport string) (int, error) {
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	prefix := `oxbroker_gateway_sessions{transport="` + transport + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, sc.Err() // no line yet: no session of that transport ever
}

// waitSessions waits until the gateway reports at least want sessions on
// transport and returns when it did. It may report more than its agents
// hold for a while: a session whose agent has given it up and redialled
// lasts on the gateway until its keepalives time out.
func waitSessions(ctx context.Context, p *proc, adminAddr, transport string, want int, timeout time.Duration) (time.Time, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	got := 0
	for time.Now().Before(deadline) {
		n, err := gatewaySessions(c, adminAddr, transport)
		if err == nil && n >= want {
			return time.Now(), nil
		}
		got = n
		if err := pause(ctx, p, 50*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("gateway has %d %s sessions after %s, want %d", got, transport, timeout, want)
}
