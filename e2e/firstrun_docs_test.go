package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/packaging"
)

// firstRunLines bounds how much an administrator reads, from the top of
// docs/operations.md to the end of its first run, before the agent runs.
const firstRunLines = 150

// etcFile matches a file of the agent's config folder.
var etcFile = regexp.MustCompile(`/etc/oxbroker/[a-z0-9-]+\.(?:token|pem)`)

// TestFirstRunDocs: the first run of docs/operations.md and the package's
// example config agree. The files the steps put in /etc/oxbroker are the
// ones the example names; the example, uncommented as the steps say (for
// Jira Cloud, and with the Data Center site too) and with those files in
// place, passes the real `oxbroker config validate`. The first run is
// short, and README.md sends an administrator to it first.
func TestFirstRunDocs(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## First run\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no \"## First run\" section")
	}
	end := start + 1 + strings.Index(doc[start+1:], "\n## ")
	if n := strings.Count(doc[:end], "\n"); n > firstRunLines {
		t.Errorf("the first run ends at line %d of docs/operations.md, want at most %d", n, firstRunLines)
	}
	steps := doc[start:end]
	commands := steps[strings.Index(steps, "```sh"):]
	commands = commands[:strings.Index(commands[5:], "```")+5]
	created := etcFile.FindAllString(commands, -1)
	for _, want := range []string{"/etc/oxbroker/broker.token", "/etc/oxbroker/jira.token", "/etc/oxbroker/gateway-ca.pem"} {
		if !slices.Contains(created, want) {
			t.Errorf("the first run's commands do not put %s in place", want)
		}
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Its first section, after the introduction, links to the first run.
	sections := strings.SplitN(string(readme), "\n## ", 3)
	if len(sections) < 2 || !strings.Contains(sections[1], "docs/operations.md#first-run") {
		t.Error("README.md's first section does not send an administrator to docs/operations.md#first-run")
	}

	example, err := packaging.AgentExample("..", "linux")
	if err != nil {
		t.Fatal(err)
	}
	cloud := packaging.Uncomment(example)
	for name, cfg := range map[string][]byte{"cloud": cloud, "data center": packaging.UncommentBlock(cloud, "  - name: jira-dc")} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			ca, err := devcert.WriteFiles(t.TempDir(), "gateway", "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			pem, err := os.ReadFile(ca.CACert)
			if err != nil {
				t.Fatal(err)
			}
			// The files the steps create, in a root of their own.
			for _, f := range created {
				content := []byte(randomToken("doc-tok-") + "\n")
				if strings.HasSuffix(f, ".pem") {
					content = pem
				}
				p := filepath.Join(root, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// Every file the uncommented example names is one the steps create.
			var settings []string
			for _, line := range strings.Split(string(cfg), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "#") {
					settings = append(settings, line)
				}
			}
			for _, f := range etcFile.FindAllString(strings.Join(settings, "\n"), -1) {
				if !slices.Contains(created, f) {
					t.Errorf("the example names %s, which the first run's commands do not put in place", f)
				}
			}
			rooted := strings.NewReplacer("/etc/oxbroker/", root+"/etc/oxbroker/", "/var/lib/oxbroker", root+"/var/lib/oxbroker").Replace(string(cfg))
			path := filepath.Join(root, "etc", "oxbroker", "config.yaml")
			if err := os.WriteFile(path, []byte(rooted), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bins.agent, "config", "validate", "--config", path).CombinedOutput()
			logs.add("config validate of the example", string(out))
			if err != nil || !strings.Contains(string(out), path+": ok") {
				t.Errorf("config validate: %v\n%s\nof\n%s", err, out, rooted)
			}
		})
	}
}
