package packaging

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMaintainerScripts renders each package's maintainer scripts from
// the shared templates: each is shell that parses, acts on its own
// package's user, unit and home, and only the agent's purge removes a
// state folder. TestDebInstall runs them.
func TestMaintainerScripts(t *testing.T) {
	for _, pkg := range Packages {
		t.Run(pkg, func(t *testing.T) {
			scripts, err := MaintainerScripts("..", pkg)
			if err != nil {
				t.Fatal(err)
			}
			if len(scripts) != len(maintainerScripts) {
				t.Fatalf("got %d scripts, want %d", len(scripts), len(maintainerScripts))
			}
			for name, s := range scripts {
				sh := exec.Command("sh", "-n")
				sh.Stdin = strings.NewReader(string(s))
				if out, err := sh.CombinedOutput(); err != nil {
					t.Errorf("%s: sh -n: %v\n%s", name, err, out)
				}
				if !strings.HasPrefix(string(s), "#!/bin/sh\n# "+pkg+", ") {
					t.Errorf("%s does not start with #!/bin/sh and the package's name:\n%s", name, s)
				}
				if name != "preinstall" && !strings.Contains(string(s), "\nunit="+pkg+".service\n") {
					t.Errorf("%s: no unit=%s.service", name, pkg)
				}
			}
			if want := "--home-dir " + homes[pkg] + " "; !strings.Contains(string(scripts["preinstall"]), want) {
				t.Errorf("preinstall: no %q", want)
			}
			purge := strings.Contains(string(scripts["postremove"]), `rm -rf "$root/var/lib/oxbroker"`)
			if want := pkg == "oxbroker"; purge != want {
				t.Errorf("postremove removes /var/lib/oxbroker on purge: got %v, want %v", purge, want)
			}
		})
	}
}
