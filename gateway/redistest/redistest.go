// Package redistest runs a real redis-server, on a loopback port of its
// own, for the tests of the gateway's Redis registry: nothing of Redis is
// faked. The server keeps nothing on disk, so a restart comes back empty,
// as a Redis without persistence does.
//
// It needs the redis-server binary (Debian and Ubuntu: apt-get install
// redis-server); a test that asks for one fails, with that hint, when it
// is missing.
package redistest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/syncbuf"
)

// Server is a redis-server process on 127.0.0.1.
type Server struct {
	// Addr is host:port; it stays the same across Stop and Start.
	Addr string

	t        testing.TB
	bin      string
	dir      string
	password string

	mu   sync.Mutex // guards cmd, done and out
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// Option changes how Start runs the server.
type Option func(*Server)

// Password makes the server require a password (requirepass).
func Password(p string) Option { return func(s *Server) { s.password = p } }

// Start runs a redis-server for the test, on a free port below the
// ephemeral range (so that no outgoing connection of a concurrent test can
// take it while the server is stopped), and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatal("redis-server not found: these tests run a real Redis. Install it " +
			"(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) and run them again")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	t.Cleanup(s.Stop)
	for range 10 {
		s.Addr = freeLowPort()
		if s.start() == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("redis-server did not start on a free port after 10 tries; last output:\n%s", s.output())
	return nil
}

// URL is the redis:// URL of database 0, with the password if any.
func (s *Server) URL() string {
	if s.password != "" {
		return "redis://:" + s.password + "@" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Stop kills the server (SIGKILL: Redis goes away as in a crash) and
// waits for it to exit. Its data go with it.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts a stopped server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart redis-server on %s: %v\n%s", s.Addr, err, s.output())
	}
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", "", "--loglevel", "warning"}
	if s.password != "" {
		args = append(args, "--requirepass", s.password)
	}
	cmd := exec.Command(s.bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %s", cmd.ProcessState)
		default:
		}
		if ping(s.Addr, s.password) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server did not answer PING within 10 s")
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// ping sends PING in the Redis protocol (after AUTH with a password)
// and expects +PONG.
func ping(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmds := "PING\r\n"
	if password != "" {
		cmds = fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password) + cmds
	}
	if _, err := c.Write([]byte(cmds)); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err == nil && password != "" {
		if strings.TrimSpace(line) != "+OK" {
			return fmt.Errorf("AUTH: got %q", line)
		}
		line, err = r.ReadString('\n')
	}
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING: got %q", line)
	}
	return nil
}

// freeLowPort returns a loopback address free on TCP whose port lies
// below the kernel's ephemeral range, in [20000, 30000): the e2e harness
// takes its gateways' ports from below 20000, so the two never collide.
// Start tries another port if Redis cannot bind this one.
func freeLowPort() string {
	high := 30000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 21000 && n < high {
				high = n
			}
		}
	}
	for {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(high-20000)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = syncbuf.Buffer
