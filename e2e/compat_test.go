package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// previousRelease is the commit of the release before this one: its
// agent and gateway must talk to this one's (tunnel/spec.md is the
// contract; ProtocolVersion did not change). Move it on at each release.
const previousRelease = "df91ddf"

// TestWireCompatWithPreviousRelease: an agent of the previous release
// serves calls through a gateway of this one, and an agent of this one
// through a gateway of the previous release, over each transport. The
// previous release is built from the repository's history (cached by
// commit); without that history the test fails, unless
// OXBROKER_SKIP_COMPAT=1 says to skip it.
func TestWireCompatWithPreviousRelease(t *testing.T) {
	old := buildRelease(t, previousRelease)
	pairs := []struct {
		name           string
		agent, gateway string
	}{
		{"old agent to new gateway", old.agent, bins.gateway},
		{"new agent to old gateway", bins.agent, old.gateway},
	}
	for _, p := range pairs {
		for _, tr := range transports {
			t.Run(p.name+"/"+tr, func(t *testing.T) {
				e := newEnv(t)
				e.startGatewayBin(p.gateway)
				e.startAgentBin(p.agent, agentOpts{transport: tr})
				e.waitSessions(2, tr, 15*time.Second)
				resp, b := e.jiraCall("GET", "/rest/api/3/myself", "")
				if resp.StatusCode != 200 {
					t.Fatalf("a call through the tunnel: got %d %s, want 200", resp.StatusCode, b)
				}
				e.checkJiraSaw(t, e.Jira.Requests())
				if n := len(e.Jira.Requests()); n != 1 {
					t.Errorf("requests at Jira: got %d, want 1", n)
				}
			})
		}
	}
}

// release is the two binaries of one commit.
type release struct{ agent, gateway string }

// buildRelease builds the agent and gateway of commit, or takes them from
// the cache (the user's cache directory, by commit, platform and Go
// version). It fails the test when the commit is not in the repository's
// history, unless OXBROKER_SKIP_COMPAT=1.
func buildRelease(t *testing.T, commit string) release {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("OXBROKER_SKIP_COMPAT") == "1" {
			t.Skipf("%s; skipped: OXBROKER_SKIP_COMPAT=1", msg)
		}
		t.Fatalf("%s. This test builds the previous release (commit %s) from the repository's history: run it in a clone with that history (git fetch --unshallow), or set OXBROKER_SKIP_COMPAT=1 to skip it", msg, commit)
	}
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--verify", "--quiet", commit+"^{commit}").Output()
	if err != nil {
		unavailable("commit %s is not in the repository's history (git rev-parse: %v)", commit, err)
	}
	full := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "oxbroker-compat", fmt.Sprintf("%s-%s-%s-%s", full, runtime.GOOS, runtime.GOARCH, runtime.Version()))
	rel := release{agent: filepath.Join(dir, "oxbroker"), gateway: filepath.Join(dir, "oxbroker-gateway")}
	if fileExists(rel.agent) && fileExists(rel.gateway) {
		return rel
	}
	// Built in a directory beside the cache's, then moved into place
	// whole, so that a run that stops halfway leaves nothing half-built.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.MkdirTemp(filepath.Dir(dir), ".build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(bin)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	tarball := filepath.Join(tmp, "src.tar")
	for _, c := range [][]string{
		{"git", "-C", "..", "archive", "-o", tarball, full},
		{"mkdir", src},
		{"tar", "-xf", tarball, "-C", src},
		{"go", "build", "-C", src, "-o", bin + string(filepath.Separator), "./cmd/oxbroker", "./cmd/oxbroker-gateway"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("building commit %s: %s: %v\n%s", commit, strings.Join(c, " "), err, out)
		}
	}
	if err := os.Rename(bin, dir); err != nil && !(fileExists(rel.agent) && fileExists(rel.gateway)) {
		t.Fatalf("caching the binaries of %s: %v", commit, err)
	}
	return rel
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
