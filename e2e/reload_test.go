package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

func sessionIDs(e *env) []string {
	var ids []string
	for _, s := range e.brokerStatus().Sessions {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// sameSessions fails the test, and returns false, when the broker's
// sessions are no longer the ones in before: what happened across (a
// reload, an attack, a second agent refused) cost an agent its tunnel.
func sameSessions(t *testing.T, e *env, before []string, across string) bool {
	t.Helper()
	if after := sessionIDs(e); !slices.Equal(before, after) {
		t.Errorf("sessions changed across %s: before %v, after %v", across, before, after)
		return false
	}
	return true
}

// startWithHonestAgents starts a gateway and two agents that behave, one
// on each transport, and returns their session ids: the attack tests
// check at the end that the honest sessions outlived the attacks.
func startWithHonestAgents(t *testing.T) (e *env, gw *proc, sessions []string) {
	t.Helper()
	e = newLowPortEnv(t)
	gw = e.startGateway()
	e.startAgentNamed("q", agentOpts{transport: "quic", connections: 1})
	e.startAgentNamed("t", agentOpts{transport: "tcp", connections: 1})
	e.waitSessions(2, "", 15*time.Second)
	return e, gw, sessionIDs(e)
}

// TestReloadKeepsTunnels: SIGHUP with a new site added makes the site
// answer, while the gateway still sees the same sessions; a broken config
// is refused and the running one kept; a rotated token file is used for
// the next request with no signal at all.
func TestReloadKeepsTunnels(t *testing.T) {
	e := newEnv(t)
	// A Jira that accepts the rotated token as well: the agent takes a new
	// Jira token only once Jira accepts it (e2e/firstrun_test.go).
	rotated := randomToken("jira-rotated-")
	e.Jira = jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{
		{Scheme: jiratest.SchemeBearer, Token: e.JiraToken}, {Scheme: jiratest.SchemeBearer, Token: rotated}}})
	jira := httptest.NewServer(e.Jira)
	t.Cleanup(jira.Close)
	e.JiraURL = jira.URL
	e.startGateway()
	e.writeFile("jira.token", e.JiraToken+"\n")
	o := agentOpts{transport: "quic", tokenFile: true}
	a := e.startAgent(o)
	e.waitSessions(2, "quic", 15*time.Second)
	before := sessionIDs(e)
	if resp, _ := e.call("GET", "/b/acme/jira2/rest/api/3/myself", e.ConnectorToken, ""); resp.StatusCode != 404 {
		t.Fatalf("jira2 before reload: got %d, want 404 unknown_site", resp.StatusCode)
	}

	// A second site, pointed at the same stand-in.
	o.extraSites = fmt.Sprintf("  - name: jira2\n    url: %s\n    auth:\n      type: bearer\n      token: ${JIRA_TOKEN}\n", e.JiraURL)
	e.agentConfig(o)
	a.cmd.Process.Signal(syscall.SIGHUP)
	var resp *http.Response
	var b []byte
	if _, ok := testwait.Until(10*time.Second, func() bool {
		resp, b = e.call("GET", "/b/acme/jira2/rest/api/3/myself", e.ConnectorToken, "")
		return resp.StatusCode == 200
	}); !ok {
		t.Fatalf("jira2 after SIGHUP: %d %s", resp.StatusCode, b)
	}
	if !sameSessions(t, e, before, "the reload") {
		t.FailNow()
	}
	if st := e.brokerStatus(); !slices.Equal(st.Sites, []string{"jira", "jira2"}) {
		t.Fatalf("gateway's site list: got %v, want [jira jira2]", st.Sites)
	}

	// A broken config: logged, the running one kept.
	e.writeFile("agent.yaml", "broker: {id: acme}\nsites: nope\n")
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitOutput(t, "config reload failed; keeping the running config", 10*time.Second)
	if resp, b := e.call("GET", "/b/acme/jira2/rest/api/3/myself", e.ConnectorToken, ""); resp.StatusCode != 200 {
		t.Fatalf("after a broken reload: %d %s", resp.StatusCode, b)
	}
	e.agentConfig(o)

	// Token rotation through the file: no signal, the watcher reloads.
	e.Jira.Reset()
	e.writeFile("jira.token", rotated+"\n")
	testwait.For(t, 10*time.Second, "the rotated Jira token used", func() bool {
		e.jiraCall("GET", "/rest/api/3/myself", "") // 401 from Jira once the new token is used
		reqs := e.Jira.Requests()
		return len(reqs) > 0 && reqs[len(reqs)-1].Header.Get("Authorization") == "Bearer "+rotated
	})
	if !sameSessions(t, e, before, "the token rotation") {
		t.FailNow()
	}
}
