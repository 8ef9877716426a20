package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/gatewayyaml"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// journalWait is how soon the journal must name a mistake of the first run
// (issue 17: "within 10 s").
const journalWait = 10 * time.Second

// journalLine waits until p has logged a line that holds every part, and
// returns it: the parts name the level, the message, the cause and the fix.
func journalLine(t *testing.T, p *proc, parts ...string) string {
	t.Helper()
	var line string
	if _, ok := testwait.Until(journalWait, func() bool { line = findLine(p.out.String(), parts...); return line != "" }); !ok {
		t.Fatalf("%s logged no line with %q within %s:\n%s", p.name, parts, journalWait, p.out.String())
	}
	return line
}

// findLine returns the first line of out that holds every part.
func findLine(out string, parts ...string) string {
	for _, line := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return line
		}
	}
	return ""
}

// countLines counts the lines of out that hold every part.
func countLines(out string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			n++
		}
	}
	return n
}

// editFile replaces old by new in the file at path, which must hold old.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not hold %q:\n%s", path, old, b)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFirstRunJournal: each mistake people make on a first run is named in
// the agent's journal within seconds, at its level, with the cause and the
// fix that `oxbroker check` gives for it. The failures that retrying
// cannot mend are errors logged once (then every few minutes), not at
// each retry.
func TestFirstRunJournal(t *testing.T) {
	e := newEnv(t)
	e.startGateway()

	t.Run("unknown gateway CA", func(t *testing.T) {
		e.useSubtest(t)
		other, err := devcert.WriteFiles(t.TempDir(), "other", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.agentConfig(agentOpts{transport: "auto"})
		editFile(t, cfg, "ca_file: "+e.Certs.CACert, "ca_file: "+other.CACert)
		editFile(t, cfg, "admin:", "log:\n  level: debug\nadmin:")
		a := start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken}, "run", "--config", cfg)
		parts := []string{`level=ERROR`, `msg="tunnel down: cannot reach the gateway"`,
			`cause="The gateway's certificate at ` + e.tunnelAddr + ` is signed by an unknown authority`,
			`fix="Check that gateway.ca_file (` + other.CACert + `) holds the CA that signed the gateway's certificate."`}
		journalLine(t, a, parts...)
		// Both connections keep dialling, with backoff; the line is not
		// repeated at each attempt (once, then every 5 minutes).
		if _, ok := testwait.Until(30*time.Second, func() bool { return countLines(a.out.String(), "level=DEBUG", "msg=reconnecting") >= 6 }); !ok {
			t.Fatalf("fewer than 6 dial attempts in 30 s:\n%s", a.out.String())
		}
		if n := countLines(a.out.String(), "unknown authority"); n != 1 {
			t.Errorf("the unknown-CA line appears %d times over 6 attempts, want once:\n%s", n, a.out.String())
		}
	})

	t.Run("wrong broker token", func(t *testing.T) {
		e.useSubtest(t)
		a := e.startAgent(agentOpts{transport: "tcp", brokerToken: "not-the-broker-token"})
		journalLine(t, a, `level=ERROR`, `msg="tunnel down: the gateway refused the broker id or token"`,
			`cause="The gateway refused broker id \"acme\" or its token."`,
			`fix="Check broker.id and broker.token (or the file in broker.token_file) against what OX issued."`)
	})

	t.Run("wrong Jira token", func(t *testing.T) {
		e.useSubtest(t)
		admin := freeAddr(t)
		cfg := e.agentConfig(agentOpts{transport: "tcp", admin: admin})
		a := start(t, "agent", bins.agent, []string{"JIRA_TOKEN=not-the-jira-token"}, "run", "--config", cfg)
		journalLine(t, a, `level=ERROR`, `msg="site is unhealthy: it fails its check"`, `site=jira`, `check=credentials`,
			`cause="Jira refused the token (401 Unauthorized)."`,
			`fix="Check auth.token: bearer needs a Jira personal access token, made in Jira under Profile > Personal Access Tokens."`)
		e.waitSessions(2, "tcp", 15*time.Second)
		want := "site jira: unhealthy: Jira refused the token (401 Unauthorized). Fix: Check auth.token: bearer needs a Jira personal access token"
		if code, body := httpGet(t, "http://"+admin+"/readyz"); code != 200 || !strings.Contains(body, want) {
			t.Errorf("/readyz: got %d %q, want 200 naming the site: %q", code, body, want)
		}
	})

	t.Run("wrong Jira URL path", func(t *testing.T) {
		e.useSubtest(t)
		cfg := e.agentConfig(agentOpts{transport: "tcp"})
		editFile(t, cfg, "url: "+e.JiraURL, "url: "+e.JiraURL+"/jira-wrong")
		a := start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken}, "run", "--config", cfg)
		journalLine(t, a, `level=ERROR`, `msg="site is unhealthy: it fails its check"`, `site=jira`,
			`cause="No Jira REST API at `+e.JiraURL+`/jira-wrong (404 Not Found on versions 3 and 2)."`,
			`fix="Set url to the Jira base URL: https://jira.example.com for Data Center`)
	})

	t.Run("unreachable proxy", func(t *testing.T) {
		e.useSubtest(t)
		prx := tunneltest.ClosedAddr(t)
		_, port, _ := net.SplitHostPort(e.tunnelAddr)
		// A name, not a loopback address: HTTPS_PROXY never applies to
		// those. Through a proxy the agent does not resolve it.
		cfg := e.agentConfig(agentOpts{address: "gateway.oxbroker.test:" + port})
		a := start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken, "HTTPS_PROXY=http://" + prx}, "run", "--config", cfg)
		journalLine(t, a, `level=INFO`, `msg="dialing the gateway through proxy http://`+prx+` (from HTTPS_PROXY)"`, "transport=tcp")
		journalLine(t, a, `level=WARN`, `msg="tunnel down: cannot reach the gateway; reconnecting"`,
			`cause="Cannot connect to the proxy: connection refused: nothing listens on `+prx+`, or a firewall rejects the connection."`,
			`fix="Check the proxy's host and port in HTTPS_PROXY."`)

		// NO_PROXY takes the same gateway out of the proxy, and says so.
		b := start(t, "agent", bins.agent, []string{"JIRA_TOKEN=" + e.JiraToken, "HTTPS_PROXY=http://" + prx,
			"NO_PROXY=gateway.oxbroker.test"}, "run", "--config", cfg)
		journalLine(t, b, `level=INFO`, `msg="dialing the gateway directly (NO_PROXY names gateway.oxbroker.test)"`)
	})

	t.Run("token file unreadable by the service user", func(t *testing.T) {
		e.useSubtest(t)
		if os.Geteuid() != 0 {
			t.Skip("needs root, to run the agent as another user")
		}
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody:", err)
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			t.Skip("no runuser:", err)
		}
		// The service's user may enter the folders and read the config and
		// the broker token; the Jira token is root's alone.
		for d := e.Dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cfg := e.agentConfig(agentOpts{transport: "tcp", tokenFile: true})
		jiraToken := e.writeFile("jira.token", e.JiraToken+"\n")
		uid, _ := strconv.Atoi(nobody.Uid)
		if err := os.Chown(filepath.Join(e.Dir, "broker.token"), uid, -1); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := user.LookupGroupId(nobody.Gid)
		if err != nil {
			t.Fatal(err)
		}
		// The binaries' folder is root's alone: a copy the user may run.
		exe, err := os.ReadFile(bins.agent)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(e.Dir, "oxbroker")
		if err := os.WriteFile(bin, exe, 0o755); err != nil {
			t.Fatal(err)
		}
		a := start(t, "agent", runuser, nil, "-u", "nobody", "--", bin, "run", "--config", cfg)
		journalLine(t, a, "sites[0].auth.token_file: this process runs as nobody: user nobody cannot read "+jiraToken+
			" (root:root, mode 0600); run: chgrp "+g.Name+" "+jiraToken+" && chmod g+r "+jiraToken)
		select {
		case <-a.done:
		case <-time.After(journalWait):
			t.Fatal("the agent runs without its Jira token")
		}
	})
}

// TestReloadWrongBrokerTokenKeepsServing: saving a config with a wrong
// broker token over a working one does not take the agent offline. Under
// a steady stream of calls, the reload dials with the new token while the
// old sessions serve; the gateway refuses it, the journal says why the new
// settings were not taken, and not one call fails.
func TestReloadWrongBrokerTokenKeepsServing(t *testing.T) {
	e := newEnv(t)
	e.startGateway()
	o := agentOpts{transport: "tcp"}
	a := e.startAgent(o)
	e.waitSessions(2, "tcp", 15*time.Second)
	before := sessionIDs(e)

	stop := e.steadyLoad(20, loadTimeout)
	o.brokerToken = "wrong-after-rotation"
	e.agentConfig(o)
	reload := time.Now()
	a.cmd.Process.Signal(syscall.SIGHUP)
	journalLine(t, a, `level=ERROR`,
		`msg="the reloaded gateway settings cannot connect; the agent keeps serving on the sessions of the previous settings and keeps trying the new ones"`,
		`cause="The gateway refused broker id \"acme\" or its token."`, `fix="Check broker.id and broker.token`)
	waitServed(t, e, 20)
	results := stop()
	if ok := countOK(t, results, reload); ok < 20 {
		t.Errorf("%d calls served, want at least 20", ok)
	}
	sameSessions(t, e, before, "a reload with a wrong broker token")
	if strings.Contains(a.out.String(), "wrong-after-rotation") {
		t.Error("the broker token was logged")
	}
}

// waitServed waits until Jira has answered n more calls.
func waitServed(t *testing.T, e *env, n int) {
	t.Helper()
	from := len(e.Jira.Requests())
	if _, ok := testwait.Until(15*time.Second, func() bool { return len(e.Jira.Requests()) >= from+n }); !ok {
		t.Fatalf("Jira saw %d calls in 15 s, want %d", len(e.Jira.Requests())-from, n)
	}
}

// TestReloadNewBrokerTokenMovesOver: OX rotates the broker's token (in
// the gateway's Redis), and the customer saves the new one. Under a steady
// stream of calls, the agent dials with the new token, leaves the old
// sessions once a new one is welcomed, and not one call fails.
func TestReloadNewBrokerTokenMovesOver(t *testing.T) {
	e := newEnv(t)
	rds := redistest.Start(t)
	oldToken, newToken := e.BrokerToken, randomToken("broker-rotated-")
	// The gateway knows acme from Redis only, where its token can change
	// under a running gateway; the config holds another broker.
	cfg := e.writeFile("gateway.yaml", string(gatewayyaml.YAML(gatewayyaml.Config{
		Tunnel: e.tunnelAddr, API: e.apiAddr, Admin: e.adminAddr, Internal: freeAddr(t),
		CertFile: e.Certs.Cert, KeyFile: e.Certs.Key,
		Brokers: []gatewayyaml.Broker{{ID: "other", Token: randomToken("other-tok-"), ConnectorTokens: []string{randomToken("other-conn-")}}},
		More: fmt.Sprintf("registry:\n  type: redis\n  url: %s\n  advertise: http://127.0.0.1:1\ncluster:\n  secret_file: %s\n",
			rds.URL(), e.writeFile("cluster.secret", randomToken("cluster-secret-")+"\n")),
	})))
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	ctx := context.Background()
	setToken := func(tok string) {
		t.Helper()
		if err := rdb.HSet(ctx, gateway.BrokerKey("acme"), "token", gateway.HashToken(tok),
			"connector_tokens", gateway.HashToken(e.ConnectorToken)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setToken(oldToken)
	e.gw = start(t, "gateway", bins.gateway, nil, "run", "--config", cfg)
	e.gw.waitOutput(t, "gateway listening", 10*time.Second)

	o := agentOpts{transport: "tcp"}
	a := e.startAgent(o)
	e.waitSessions(2, "tcp", 15*time.Second)
	before := sessionIDs(e)

	stop := e.steadyLoad(20, loadTimeout)
	setToken(newToken)
	waitAccepted(t, e, newToken)
	o.brokerToken = newToken
	e.agentConfig(o)
	reload := time.Now()
	a.cmd.Process.Signal(syscall.SIGHUP)
	journalLine(t, a, `level=INFO`, `msg="the reloaded gateway settings are connected; the sessions of the previous settings drain"`)
	var after []string
	if _, ok := testwait.Until(20*time.Second, func() bool {
		after = sessionIDs(e)
		return len(after) == 2 && !slices.ContainsFunc(after, func(id string) bool { return slices.Contains(before, id) })
	}); !ok {
		t.Fatalf("sessions: before %v, after %v; want two new ones only", before, after)
	}
	waitServed(t, e, 20)
	results := stop()
	if ok := countOK(t, results, reload); ok < 20 {
		t.Errorf("%d calls served, want at least 20", ok)
	}
}

// waitAccepted waits until the gateway welcomes a hello with token, which
// announces no sites (nothing is routed to the session).
func waitAccepted(t *testing.T, e *env, token string) {
	t.Helper()
	d := &tunnel.Dialer{Transport: tunnel.DialTCP, TLS: &tls.Config{RootCAs: gatewayRoots(t, e)}}
	hello := tunnel.Hello{Protocol: tunnel.ProtocolVersion, BrokerID: "acme", Token: token, AgentID: "test", Sites: []tunnel.SiteInfo{}}
	var last error
	if _, ok := testwait.Until(15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := d.Dial(ctx, e.tunnelAddr)
		if err != nil {
			last = err
			return false
		}
		defer s.Close()
		ctrl, _, err := tunnel.ClientHandshake(ctx, s, hello)
		if err != nil {
			last = err
			return false
		}
		ctrl.Close()
		return true
	}); !ok {
		t.Fatalf("the gateway did not take the new token within 15 s: %v", last)
	}
}

// TestValidateConnect: `config validate --connect` tries a new config's
// settings before it is saved over the one in use: a wrong broker token is
// named as check names it, and the running agent is not disturbed.
func TestValidateConnect(t *testing.T) {
	e, _, _ := newEnvUp(t, agentOpts{transport: "tcp"})
	before := sessionIDs(e)

	b, err := os.ReadFile(filepath.Join(e.Dir, "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile("new-broker.token", "not-the-broker-token\n")
	next := e.writeFile("new.yaml", strings.Replace(string(b), filepath.Join(e.Dir, "broker.token"), filepath.Join(e.Dir, "new-broker.token"), 1))
	cmd := exec.Command(bins.agent, "config", "validate", "--connect", "--config", next)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "JIRA_TOKEN=" + e.JiraToken}
	out, err := cmd.CombinedOutput()
	logs.add("config validate --connect", string(out))
	if err == nil {
		t.Errorf("exit 0, want 1:\n%s", out)
	}
	for _, want := range []string{next + ": ok", "✗ auth", `cause: The gateway refused broker id "acme" or its token.`, "✓ credentials", "1 check failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	e.mustServe("after validate --connect")
	sameSessions(t, e, before, "validate --connect of a second config")
}
