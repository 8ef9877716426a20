package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/internal/freeport"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
	"github.com/oxsecurity/oxbroker/internal/syncbuf"
	"github.com/oxsecurity/oxbroker/internal/testenv"
	"github.com/oxsecurity/oxbroker/internal/testwait"
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
	// Every response a test reads through the default transport (the
	// connector calls, /healthz, /readyz, /metrics) joins the secret scan.
	http.DefaultTransport = &recordingTransport{base: http.DefaultTransport}
	code := m.Run()
	os.RemoveAll(dir)
	if leaks := logs.scan(); len(leaks) > 0 {
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "SECRET IN LOGS:", l)
		}
		code = 1
	}
	if err := leakedGoroutines(); err != nil {
		fmt.Fprintln(os.Stderr, "LEAKED GOROUTINES in the test process (relays, fake gateways, load):", err)
		code = 1
	}
	os.Exit(code)
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = syncbuf.Buffer

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

// terminated waits (at most within) for p to exit after a SIGTERM sent
// to it, checks that it exited 0, and returns when it exited.
func (p *proc) terminated(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s still running %s after SIGTERM", p.name, within)
	}
	exited := time.Now()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code of %s after SIGTERM: got %d, want 0", p.name, code)
	}
	return exited
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitOutput waits until the process has printed s.
func (p *proc) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	exited := false
	printed := func() bool {
		select {
		case <-p.done:
			exited = true
		default:
		}
		return strings.Contains(p.out.String(), s) || exited
	}
	if _, ok := testwait.Until(timeout, printed); !ok {
		t.Fatalf("%s did not print %q within %s:\n%s", p.name, s, timeout, p.out.String())
	}
	if !strings.Contains(p.out.String(), s) {
		t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.cmd.ProcessState, s, p.out.String())
	}
}

// logs keeps the output of every process of the run, for the secret scan.
var logs = &allLogs{}

type allLogs struct {
	mu      sync.Mutex // guards out, names and secrets
	out     []string
	names   []string // what each of out is: a process, a response
	secrets []string
}

// scan reports every process output, response and metrics page of the run
// that contains a token of the run, in clear or base64 (as in a Basic
// header, whatever comes before the token).
func (l *allLogs) scan() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	idx := newSecretIndex(l.secrets)
	var leaks []string
	for i, out := range l.out {
		for _, s := range idx.find(out) {
			leaks = append(leaks, fmt.Sprintf("%s (output %d) contains token %s…", l.names[i], i, s[:12]))
		}
	}
	return leaks
}

func (l *allLogs) add(name, out string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(l.out, out)
	l.names = append(l.names, name)
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
// TCP and UDP, as the gateway's tunnel listener needs, and freeAddr one
// whose TCP port is free. Both pick ports below the ephemeral range
// (lowPortAddr): a port the kernel handed out and the test released could
// be handed out again to any other test process's outgoing connection or
// :0 listener before the gateway binds it; go test runs packages in
// parallel, and that happened in CI.
func freeTunnelAddr(t *testing.T) string {
	t.Helper()
	return lowPortAddr(t, true)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return lowPortAddr(t, false)
}

// env is one gateway, its broker "acme", and a Jira stand-in (testenv).
type env struct {
	*testenv.Env
	t          *testing.T
	tunnelAddr string
	apiAddr    string
	adminAddr  string // gateway admin listener
	gw         *proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: testenv.New(t, testenv.Options{Token: randomToken}), t: t}
	e.tunnelAddr = freeTunnelAddr(t)
	e.apiAddr = freeAddr(t)
	e.adminAddr = freeAddr(t)
	return e
}

// serverTLS is the TLS config of a server with the gateway's certificate.
func (e *env) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.Certs.Cert, e.Certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func (e *env) writeFile(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) startGateway() *proc {
	e.t.Helper()
	return e.startGatewayBin(bins.gateway)
}

// startGatewayBin is startGateway with the gateway binary bin.
func (e *env) startGatewayBin(bin string) *proc {
	e.t.Helper()
	cfg := e.writeFile("gateway.yaml", e.gatewayYAML(gatewayyaml.Config{Tunnel: e.tunnelAddr, API: e.apiAddr, Admin: e.adminAddr}))
	e.gw = start(e.t, "gateway", bin, nil, "run", "--config", cfg)
	e.gw.waitOutput(e.t, "gateway listening", 10*time.Second)
	return e.gw
}

// gatewayYAML is the config c describes, with the env's certificate and
// broker acme first among the brokers.
func (e *env) gatewayYAML(c gatewayyaml.Config) string {
	c.CertFile, c.KeyFile = e.Certs.Cert, e.Certs.Key
	acme := gatewayyaml.Broker{ID: "acme", Token: e.BrokerToken, ConnectorTokens: []string{e.ConnectorToken}}
	c.Brokers = append([]gatewayyaml.Broker{acme}, c.Brokers...)
	return string(gatewayyaml.YAML(c))
}

// checkJiraSaw checks what the Jira stand-in saw of reqs: the site's
// token, never the connector's, and no Ox-Broker-* header.
func (e *env) checkJiraSaw(t *testing.T, reqs []jiratest.Request) {
	t.Helper()
	for _, r := range reqs {
		if got, want := r.Header.Get("Authorization"), "Bearer "+e.JiraToken; got != want {
			t.Errorf("%s %s: Jira saw Authorization %q, want the site's token", r.Method, r.Path, got)
		}
		for k, vs := range r.Header {
			if strings.HasPrefix(k, "Ox-Broker-") {
				t.Errorf("%s %s: Jira saw broker header %s", r.Method, r.Path, k)
			}
			for _, v := range vs {
				if strings.Contains(v, e.ConnectorToken) {
					t.Errorf("%s %s: Jira saw the connector token in %s", r.Method, r.Path, k)
				}
			}
		}
	}
}

// newEnvUp is newEnv with its gateway and an agent with o started, once
// the agent's two sessions over o.transport are up.
func newEnvUp(t *testing.T, o agentOpts) (e *env, gw, agent *proc) {
	t.Helper()
	e = newEnv(t)
	gw = e.startGateway()
	agent = e.startAgent(o)
	e.waitSessions(2, o.transport, 15*time.Second)
	return e, gw, agent
}

// agentOpts varies the agent's config.
type agentOpts struct {
	transport   string
	address     string   // default: the gateway's tunnel address
	addresses   []string // gateway.addresses
	broker      string   // broker id; default acme
	brokerToken string   // default: the right one
	proxy       string
	serverName  string
	connections int
	admin       string // admin listen address; "" = off
	extraSites  string // YAML list items appended to sites:
	tokenFile   bool   // the site reads its Jira token from dir/jira.token
}

func (e *env) startAgent(o agentOpts) *proc {
	e.t.Helper()
	return e.startAgentBin(bins.agent, o)
}

// startAgentBin is startAgent with the agent binary bin.
func (e *env) startAgentBin(bin string, o agentOpts) *proc {
	e.t.Helper()
	cfg := e.agentConfig(o)
	return start(e.t, "agent", bin, []string{"JIRA_TOKEN=" + e.JiraToken}, "run", "--config", cfg)
}

// agentConfig writes agent.yaml and broker.token and returns the config path.
func (e *env) agentConfig(o agentOpts) string {
	e.t.Helper()
	if o.address == "" {
		o.address = e.tunnelAddr
	}
	if o.brokerToken == "" {
		o.brokerToken = e.BrokerToken
	}
	if o.connections == 0 {
		o.connections = 2
	}
	tokenName := "broker.token"
	if o.broker == "" {
		o.broker = "acme"
	} else {
		tokenName = "broker-" + o.broker + ".token"
	}
	addresses := make([]string, len(o.addresses))
	for i, a := range o.addresses {
		addresses[i] = strconv.Quote(a)
	}
	e.writeFile(tokenName, o.brokerToken+"\n")
	siteToken := "token: ${JIRA_TOKEN}"
	if o.tokenFile {
		siteToken = "token_file: " + filepath.Join(e.Dir, "jira.token")
	}
	cfg := e.writeFile("agent.yaml", fmt.Sprintf(`broker:
  id: %s
  token_file: %s
state_dir: %s
gateway:
  address: %s
  addresses: [%s]
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
`, o.broker, filepath.Join(e.Dir, tokenName), filepath.Join(e.Dir, "state"), o.address, strings.Join(addresses, ", "), o.transport, o.connections,
		e.Certs.CACert, o.serverName, o.proxy, e.JiraURL, siteToken, o.extraSites, o.admin))
	return cfg
}

// call sends one connector request to the gateway.
func (e *env) call(method, path, token, body string) (*http.Response, []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, b, err := connectortest.Call(ctx, http.DefaultClient, method, "http://"+e.apiAddr+path, token, nil, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// jiraCall calls the site "jira" of broker acme with the connector token.
func (e *env) jiraCall(method, path, body string) (*http.Response, []byte) {
	return e.call(method, "/b/acme/jira"+path, e.ConnectorToken, body)
}

// brokerOffline reports whether a call through the gateway answers 502
// broker_offline.
func (e *env) brokerOffline() bool {
	resp, _ := e.jiraCall("GET", "/rest/api/3/myself", "")
	return resp.StatusCode == 502 && resp.Header.Get(brokerhttp.HeaderError) == string(brokerhttp.BrokerOffline)
}

// waitSessions waits until the broker has n sessions, all on transport.
func (e *env) waitSessions(n int, transport string, timeout time.Duration) gateway.BrokerStatus {
	e.t.Helper()
	var st gateway.BrokerStatus
	if _, ok := testwait.Until(timeout, func() bool {
		st = e.brokerStatus()
		ok := len(st.Sessions) == n
		for _, s := range st.Sessions {
			ok = ok && (transport == "" || s.Transport == transport)
		}
		return ok
	}); !ok {
		e.t.Fatalf("broker sessions: got %+v, want %d on %s", st.Sessions, n, transport)
	}
	return st
}

func (e *env) brokerStatus() gateway.BrokerStatus {
	e.t.Helper()
	resp, b := e.call("GET", "/v1/brokers/acme", e.ConnectorToken, "")
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

// --- Secret scan of everything the run produced (fault and abuse suite) ---

// maxRecordedBody bounds how much of one response body joins the secret
// scan: error bodies, status pages and /metrics are far smaller; only
// attachment downloads are cut short.
const maxRecordedBody = 256 << 10

// recordOutput adds text the test fetched itself (a raw HTTP answer, a
// metrics page) to the end-of-run secret scan.
func recordOutput(name, text string) { logs.add(name, text) }

// recordingTransport adds every response read through it (status line,
// headers, and the first maxRecordedBody bytes of the body) to the secret
// scan when the body is closed.
type recordingTransport struct{ base http.RoundTripper }

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s -> %s\n", req.Method, req.URL.Redacted(), resp.Status)
	resp.Header.Write(&head)
	resp.Body = &recordingBody{ReadCloser: resp.Body, name: "response to " + req.Method + " " + req.URL.Path, head: head.String()}
	return resp, nil
}

type recordingBody struct {
	io.ReadCloser
	name string
	head string
	mu   sync.Mutex // guards buf and done
	buf  bytes.Buffer
	done bool
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	if room := maxRecordedBody - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(n, room)])
	}
	b.mu.Unlock()
	if err != nil {
		b.flush()
	}
	return n, err
}

func (b *recordingBody) Close() error {
	b.flush()
	return b.ReadCloser.Close()
}

func (b *recordingBody) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		recordOutput(b.name, b.head+"\n"+b.buf.String())
	}
}

// secretForms returns the forms in which tok would show: in clear, and
// base64 at each of the three alignments it can have after a prefix (as
// in Basic "email:token"), trimmed to the characters that depend on the
// token alone.
func secretForms(tok string) []string {
	forms := []string{tok}
	for k := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), tok...))
		first := (k + 2) / 3 * 4       // first group made of token bytes only
		last := (k + len(tok)) / 3 * 4 // end of the last full group
		if last-first >= 16 {
			forms = append(forms, enc[first:last])
		}
	}
	return forms
}

// secretIndex finds any of many secret forms in a text in one pass: each
// form is looked up by its first anchorLen bytes.
type secretIndex struct {
	byAnchor map[string][]secretForm
}

type secretForm struct{ form, token string }

const anchorLen = 12

func newSecretIndex(tokens []string) *secretIndex {
	idx := &secretIndex{byAnchor: make(map[string][]secretForm)}
	for _, tok := range tokens {
		for _, f := range secretForms(tok) {
			if len(f) < anchorLen {
				continue
			}
			idx.byAnchor[f[:anchorLen]] = append(idx.byAnchor[f[:anchorLen]], secretForm{f, tok})
		}
	}
	return idx
}

// find returns the tokens of which text contains a form.
func (idx *secretIndex) find(text string) []string {
	var found []string
	for i := 0; i+anchorLen <= len(text); i++ {
		for _, f := range idx.byAnchor[text[i:i+anchorLen]] {
			if strings.HasPrefix(text[i:], f.form) && !slices.Contains(found, f.token) {
				found = append(found, f.token)
			}
		}
	}
	return found
}

// --- Helpers of the fault and abuse suite ---

// startAgentNamed starts one more agent of broker acme with its own
// config file and state_dir (so its own agent id), for HA tests: name
// tells the agents apart in logs and files.
func (e *env) startAgentNamed(name string, o agentOpts) *proc {
	e.t.Helper()
	b, err := os.ReadFile(e.agentConfig(o))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "state_dir: "+filepath.Join(e.Dir, "state"), "state_dir: "+filepath.Join(e.Dir, "state-"+name), 1)
	path := e.writeFile("agent-"+name+".yaml", cfg)
	return start(e.t, "agent "+name, bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken}, "run", "--config", path)
}

// scrapeMetrics fetches the Prometheus text of an admin listener (it
// joins the secret scan like every response).
func scrapeMetrics(t *testing.T, adminAddr string) string {
	t.Helper()
	code, body := httpGet(t, "http://"+adminAddr+"/metrics")
	if code != 200 {
		t.Fatalf("GET %s/metrics: %d %s", adminAddr, code, body)
	}
	return body
}

// metricValue returns the value of the sample whose name and labels are
// exactly series (e.g. `go_goroutines`, `oxbroker_tunnel_connections{transport="tcp"}`).
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// rssKiB reads VmRSS of a running process from /proc.
func rssKiB(p *proc) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB")), nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// lowPortAddr returns a loopback address free on TCP (and on UDP too if
// udp) whose port lies below the kernel's ephemeral range: an outgoing
// connection of a concurrent test can then never take it between the
// check and a process's bind, nor while a gateway restarts on it. Ports
// are handed out in order from a random start within [10000, 20000), and
// none twice in one test process, so that two tests of this package
// cannot pick the same port before either binds it; gateway/redistest
// takes its Redis ports from above 20000.
func lowPortAddr(t *testing.T, udp bool) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.next == 0 {
		ports.next = lowPortMin + mrand.IntN(lowPortMax-lowPortMin)
	}
	for range lowPortMax - lowPortMin {
		port := ports.next
		if ports.next++; ports.next == lowPortMax {
			ports.next = lowPortMin
		}
		if addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port)); freeport.Free(addr, udp) {
			return addr
		}
	}
	t.Fatal("no free port in [10000, 20000)")
	return ""
}

const lowPortMin, lowPortMax = 10000, 20000

var ports struct {
	mu   sync.Mutex // guards next
	next int        // the next port to try; 0 before the first
}

// newLowPortEnv is newEnv; the name stays for the scenarios that rely on
// ports below the ephemeral range (they restart a gateway on the same ports).
func newLowPortEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t)
}

// leakedGoroutines checks, once every test has ended, that the test
// process itself (relays, fake gateways, load generators, recorders) left
// no goroutine behind. Idle keep-alive connections to processes that are
// gone are closed first.
func leakedGoroutines() error {
	if rt, ok := http.DefaultTransport.(*recordingTransport); ok {
		if ht, ok := rt.base.(*http.Transport); ok {
			ht.CloseIdleConnections()
		}
	}
	return goleak.Find()
}
