package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

// bins are the binaries under test, built once by TestMain.
var bins struct{ agent, gateway string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oxbroker-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir, "../cmd/oxbroker", "../cmd/oxbroker-gateway")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	bins.agent = filepath.Join(dir, "oxbroker")
	bins.gateway = filepath.Join(dir, "oxbroker-gateway")
	code := m.Run()
	os.RemoveAll(dir)
	if leaks := logs.scan(); len(leaks) > 0 {
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "SECRET IN LOGS:", l)
		}
		code = 1
	}
	os.Exit(code)
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running binary under test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// start runs bin with args and only the environment given (plus PATH), so
// that the machine's proxy variables cannot change what is tested.
func start(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.out.String())
		}
		logs.add(name, p.out.String())
	})
	return p
}

// stop sends SIGTERM and waits; SIGKILL after 15 s.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not exit 15 s after SIGTERM", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitOutput waits until the process has printed s.
func (p *proc) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), s) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.cmd.ProcessState, s, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not print %q within %s:\n%s", p.name, s, timeout, p.out.String())
}

// logs keeps the output of every process of the run, for the secret scan.
var logs = &allLogs{}

type allLogs struct {
	mu      sync.Mutex // guards out and secrets
	out     []string
	secrets []string
}

// scan reports every process output that contains a token of the run, in
// clear or base64 (as in a Basic header).
func (l *allLogs) scan() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var leaks []string
	for _, s := range l.secrets {
		forms := []string{s, base64.StdEncoding.EncodeToString([]byte(s))}
		for i, out := range l.out {
			for _, f := range forms {
				if strings.Contains(out, f) {
					leaks = append(leaks, fmt.Sprintf("process output %d contains token %s…", i, s[:12]))
				}
			}
		}
	}
	return leaks
}

func (l *allLogs) add(name, out string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(l.out, out)
}

// randomToken makes a distinctive token and remembers it, so that the
// whole run's output can be scanned for it at the end.
func randomToken(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	tok := prefix + hex.EncodeToString(b)
	logs.mu.Lock()
	logs.secrets = append(logs.secrets, tok)
	logs.mu.Unlock()
	return tok
}

// freeTunnelAddr returns a loopback address whose port is free on both
// TCP and UDP, as the gateway's tunnel listener needs.
func freeTunnelAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no port free on both tcp and udp")
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// env is one gateway, its broker "acme", and a Jira stand-in.
type env struct {
	t              *testing.T
	dir            string
	certs          devcert.Files
	brokerToken    string
	connectorToken string
	jiraToken      string
	jira           *jiratest.Server
	jiraURL        string
	tunnelAddr     string
	apiAddr        string
	adminAddr      string // gateway admin listener
	gw             *proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		t:              t,
		dir:            t.TempDir(),
		brokerToken:    randomToken("broker-tok-"),
		connectorToken: randomToken("connector-tok-"),
		jiraToken:      randomToken("jira-tok-"),
	}
	var err error
	if e.certs, err = devcert.WriteFiles(e.dir, "gateway", "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	e.jira = jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: "Bearer", Token: e.jiraToken}}})
	srv := httptest.NewServer(e.jira)
	t.Cleanup(srv.Close)
	e.jiraURL = srv.URL
	e.tunnelAddr = freeTunnelAddr(t)
	e.apiAddr = freeAddr(t)
	e.adminAddr = freeAddr(t)
	return e
}

func (e *env) writeFile(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) startGateway() *proc {
	e.t.Helper()
	cfg := e.writeFile("gateway.yaml", fmt.Sprintf(`listen:
  tunnel: %s
  api: %s
  admin: %q
tls:
  cert_file: %s
  key_file: %s
brokers:
  - id: acme
    token: %s
    connector_tokens: [%s]
`, e.tunnelAddr, e.apiAddr, e.adminAddr, e.certs.Cert, e.certs.Key, gateway.HashToken(e.brokerToken), gateway.HashToken(e.connectorToken)))
	e.gw = start(e.t, "gateway", bins.gateway, nil, "run", "--config", cfg)
	e.gw.waitOutput(e.t, "gateway listening", 10*time.Second)
	return e.gw
}

// agentOpts varies the agent's config.
type agentOpts struct {
	transport   string
	address     string // default: the gateway's tunnel address
	brokerToken string // default: the right one
	proxy       string
	serverName  string
	connections int
	admin       string // admin listen address; "" = off
	extraSites  string // YAML list items appended to sites:
	tokenFile   bool   // the site reads its Jira token from dir/jira.token
}

func (e *env) startAgent(o agentOpts) *proc {
	e.t.Helper()
	cfg := e.agentConfig(o)
	return start(e.t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.jiraToken}, "run", "--config", cfg)
}

// agentConfig writes agent.yaml and broker.token and returns the config path.
func (e *env) agentConfig(o agentOpts) string {
	e.t.Helper()
	if o.address == "" {
		o.address = e.tunnelAddr
	}
	if o.brokerToken == "" {
		o.brokerToken = e.brokerToken
	}
	if o.connections == 0 {
		o.connections = 2
	}
	e.writeFile("broker.token", o.brokerToken+"\n")
	siteToken := "token: ${JIRA_TOKEN}"
	if o.tokenFile {
		siteToken = "token_file: " + filepath.Join(e.dir, "jira.token")
	}
	cfg := e.writeFile("agent.yaml", fmt.Sprintf(`broker:
  id: acme
  token_file: %s
state_dir: %s
gateway:
  address: %s
  transport: %s
  connections: %d
  ca_file: %s
  server_name: %q
  proxy: %q
sites:
  - name: jira
    url: %s
    auth:
      type: bearer
      %s
%sadmin:
  listen: %q
`, filepath.Join(e.dir, "broker.token"), filepath.Join(e.dir, "state"), o.address, o.transport, o.connections,
		e.certs.CACert, o.serverName, o.proxy, e.jiraURL, siteToken, o.extraSites, o.admin))
	return cfg
}

// writeAgentConfig rewrites agent.yaml (and broker.token) without starting
// anything, for reload tests.
func (e *env) writeAgentConfig(o agentOpts) {
	e.t.Helper()
	e.agentConfig(o)
}

// call sends one connector request to the gateway.
func (e *env) call(method, path, token string, body io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.apiAddr+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// jiraCall calls the site "jira" of broker acme with the connector token.
func (e *env) jiraCall(method, path, body string) (*http.Response, []byte) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return e.call(method, "/b/acme/jira"+path, e.connectorToken, r)
}

// waitSessions waits until the broker has n sessions, all on transport.
func (e *env) waitSessions(n int, transport string, timeout time.Duration) gateway.BrokerStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var st gateway.BrokerStatus
	for time.Now().Before(deadline) {
		st = e.brokerStatus()
		ok := len(st.Sessions) == n
		for _, s := range st.Sessions {
			ok = ok && (transport == "" || s.Transport == transport)
		}
		if ok {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("broker sessions: got %+v, want %d on %s", st.Sessions, n, transport)
	return st
}

func (e *env) brokerStatus() gateway.BrokerStatus {
	e.t.Helper()
	resp, b := e.call("GET", "/v1/brokers/acme", e.connectorToken, nil)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET /v1/brokers/acme: %d %s", resp.StatusCode, b)
	}
	var st gateway.BrokerStatus
	if err := jsonUnmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
