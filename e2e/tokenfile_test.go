package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokenFileModes runs the real agent against token files with the
// modes people leave behind: a Jira token file anyone may write is
// refused by `config validate` and by `run` (which does not start), with
// the chmod that fixes it; one anyone may read is served, and `run` and
// `config validate` say how to close it.
func TestTokenFileModes(t *testing.T) {
	e := newEnv(t)
	jiraToken := filepath.Join(e.Dir, "jira.token")
	cfg := e.agentConfig(agentOpts{transport: "tcp", connections: 1, tokenFile: true})
	setMode := func(mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(jiraToken, []byte(e.JiraToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(jiraToken, mode); err != nil {
			t.Fatal(err)
		}
	}
	validate := func() (string, error) {
		out, err := exec.Command(bins.agent, "config", "validate", "--config", cfg).CombinedOutput()
		logs.add("config validate", string(out))
		return string(out), err
	}

	t.Run("writable by others", func(t *testing.T) {
		setMode(0o666)
		out, err := validate()
		want := "sites[0].auth.token_file: " + jiraToken + " is writable by its group or by others (mode 0666): anyone among them could replace the token; run: chmod go-w " + jiraToken
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("config validate: err %v, output:\n%s\nwant a failure with %q", err, out, want)
		}
		p := start(t, "agent", bins.agent, nil, "run", "--config", cfg)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Fatal("the agent started with a token file anyone may write")
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.out.String(), "chmod go-w "+jiraToken) {
			t.Errorf("run: exit code %d, output:\n%s\nwant 1 and the chmod", code, p.out.String())
		}
	})

	t.Run("readable by others", func(t *testing.T) {
		setMode(0o644)
		out, err := validate()
		want := "warning: sites[0].auth.token_file: " + jiraToken + " is readable by every user of this machine (mode 0644); run: chmod o-r " + jiraToken
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("config validate: err %v, output:\n%s\nwant success with %q", err, out, want)
		}
		e.startGateway()
		a := start(t, "agent", bins.agent, nil, "run", "--config", cfg)
		a.waitOutput(t, "chmod o-r "+jiraToken, 10*time.Second)
		e.waitSessions(1, "tcp", 15*time.Second)
		if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
			t.Errorf("a call with the token from the file: %d %s", resp.StatusCode, b)
		}
	})
}
