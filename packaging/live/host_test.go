//go:build linux

package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/freeport"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
	"github.com/oxsecurity/oxbroker/internal/syncbuf"
	"github.com/oxsecurity/oxbroker/internal/testenv"
	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// release is the two versions of the Linux packages the test installs
// (the second upgrades the first) and the agent built with the live
// test's fault switch.
type release struct {
	old, new string // versions
	dist     map[string]string
	livetest string // oxbroker built with -tags livetest
}

// deb is the path of pkg's .deb of version v.
func (r *release) deb(pkg, v string) string {
	return filepath.Join(r.dist[v], fmt.Sprintf("%s_%s_linux_amd64.deb", pkg, v))
}

// build makes the release with the real package builder, as make package
// does, for linux/amd64 only.
func build(t *testing.T, repo string) *release {
	t.Helper()
	r := &release{old: "0.0.1-live.1", new: "0.0.1-live.2", dist: map[string]string{}}
	dir := t.TempDir()
	for _, v := range []string{r.old, r.new} {
		start := time.Now()
		r.dist[v] = filepath.Join(dir, v)
		run(t, repo, "go", "run", "./packaging/cmd/oxpackage", "-version", v, "-platforms", "linux/amd64", "-dist", r.dist[v])
		t.Logf("built the %s packages in %.0fs", v, time.Since(start).Seconds())
	}
	r.livetest = filepath.Join(dir, "oxbroker-livetest")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "livetest", "-ldflags", "-X main.version="+r.new+"-livetest",
		"-o", r.livetest, "./cmd/oxbroker")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the livetest agent: %v\n%s", err, out)
	}
	return r
}

// extract takes path out of a .deb, as docs/operations.md 2.4 does for
// the agent, into dir, and returns where it went.
func extract(t *testing.T, deb, path, dir string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(path))
	cmd := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO ".$2" > "$3" && chmod 0755 "$3"`, "sh", deb, path, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extract %s from %s: %v\n%s", path, deb, err, b)
	}
	return out
}

// host is what runs on the host's loopback: the Jira stand-in (testenv),
// and a gateway for the agents in the container.
type host struct {
	*testenv.Env
	inflight atomic.Int32 // Jira requests being answered
	gw       *gatewayProc
}

func newHost(t *testing.T) *host {
	t.Helper()
	h := &host{}
	h.Env = testenv.New(t, testenv.Options{Wrap: func(jira http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.inflight.Add(1)
			defer h.inflight.Add(-1)
			jira.ServeHTTP(w, r)
		})
	}})
	return h
}

// gatewayConfig is the config of a gateway with broker acme, its
// certificate and key in dir.
func (h *host) gatewayConfig(tunnel, api, admin, dir string) string {
	return string(gatewayyaml.YAML(gatewayyaml.Config{
		Tunnel: tunnel, API: api, Admin: admin,
		CertFile: dir + "/tls.crt", KeyFile: dir + "/tls.key",
		Brokers: []gatewayyaml.Broker{{ID: "acme", Token: h.BrokerToken, ConnectorTokens: []string{h.ConnectorToken}}},
	}))
}

// agentConfig is an agent config in the form of docs/operations.md's
// section 3.3 (Jira Data Center with a token file), for the Jira
// stand-in, with the files in /etc/oxbroker (or jiraTokenFile).
func (h *host) agentConfig(tunnel, caFile, brokerTokenFile, jiraTokenFile, stateDir string) string {
	return fmt.Sprintf(`broker:
  id: acme
  token_file: %s
state_dir: %s
gateway:
  address: %s
  ca_file: %s
sites:
  - name: jira
    url: %s
    auth:
      type: bearer
      token_file: %s
admin:
  listen: ""
`, brokerTokenFile, stateDir, tunnel, caFile, h.JiraURL, jiraTokenFile)
}

// gatewayProc is a gateway on the host, or the address of one in the
// container.
type gatewayProc struct {
	api, tunnel, admin string
	cmd                *exec.Cmd
	out                *syncBuffer
}

// startGateway runs bin on the host's loopback.
func (h *host) startGateway(t *testing.T, bin string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{tunnel: freeAddr(t, true), api: freeAddr(t, false), admin: freeAddr(t, false), out: &syncBuffer{}}
	cfg := filepath.Join(h.Dir, "gateway.yaml")
	os.Rename(h.Certs.Cert, filepath.Join(h.Dir, "tls.crt"))
	os.Rename(h.Certs.Key, filepath.Join(h.Dir, "tls.key"))
	h.Certs.Cert, h.Certs.Key = filepath.Join(h.Dir, "tls.crt"), filepath.Join(h.Dir, "tls.key")
	if err := os.WriteFile(cfg, []byte(h.gatewayConfig(g.tunnel, g.api, g.admin, h.Dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(bin, "run", "--config", cfg)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		g.cmd.Wait()
		if t.Failed() {
			t.Logf("host gateway's log:\n%s", g.out)
		}
	})
	testwait.For(t, 30*time.Second, "the host gateway", func() bool { return strings.Contains(g.out.String(), "gateway listening") })
	return g
}

// startAgent runs the agent bin on the host, connecting to g.
func (h *host) startAgent(t *testing.T, bin string, g *gatewayProc) *syncBuffer {
	t.Helper()
	dir := t.TempDir()
	for name, v := range map[string]string{"broker.token": h.BrokerToken, "jira.token": h.JiraToken} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "agent.yaml")
	yaml := h.agentConfig(g.tunnel, h.Certs.CACert, filepath.Join(dir, "broker.token"), filepath.Join(dir, "jira.token"), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("host agent's log:\n%s", out)
		}
	})
	return out
}

// call sends a connector request to g and returns the status and body.
func (h *host) call(t *testing.T, g *gatewayProc, method, path string) (int, string) {
	t.Helper()
	code, body, err := h.tryCall(g, method, path)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, body
}

func (h *host) tryCall(g *gatewayProc, method, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+g.api+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+h.ConnectorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// myself is the call the tests make through the gateway: Jira's
// /rest/api/3/myself, which the stand-in answers only with the Jira token.
func (h *host) myself(t *testing.T, g *gatewayProc) {
	t.Helper()
	if code, body := h.call(t, g, "GET", "/b/acme/jira/rest/api/3/myself"); code != http.StatusOK {
		t.Fatalf("GET myself through the gateway: %d %s", code, body)
	}
}

// broker is the gateway's view of broker acme.
func (h *host) broker(t *testing.T, g *gatewayProc) gateway.BrokerStatus {
	t.Helper()
	code, body := h.call(t, g, "GET", "/v1/brokers/acme")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/brokers/acme: %d %s", code, body)
	}
	var st gateway.BrokerStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// sessionIDs are the ids of the broker's sessions, sorted as the gateway lists them.
func sessionIDs(st gateway.BrokerStatus) string {
	var ids []string
	for _, s := range st.Sessions {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, ",")
}

// freeAddr is a loopback address whose port is free (on TCP, and on UDP
// too for a tunnel listener), below the ephemeral range so that no
// outgoing connection takes it before the gateway binds it; the
// container shares the host's ports.
func freeAddr(t *testing.T, udp bool) string {
	t.Helper()
	for range 1000 {
		if addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(30000+mrand.IntN(2000))); freeport.Free(addr, udp) {
			return addr
		}
	}
	t.Fatal("no free port in [30000, 32000)")
	return ""
}

// syncBuffer is a bytes.Buffer for a process's output, read while it runs.
type syncBuffer = syncbuf.Buffer
