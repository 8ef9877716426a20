package packaging

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// maintainerScripts are the deb and rpm maintainer scripts of each Linux
// package, rendered from linux/scripts/NAME.sh.tmpl: the agent's and the
// gateway's differ only in names, the user's home and the agent's state
// folder, so one template serves both and a fix reaches both.
var maintainerScripts = []string{"preinstall", "postinstall", "preremove", "postremove"}

// packageScripts is what sets one package's scripts apart.
type packageScripts struct {
	Name string // the package, its system user and group, its unit
	Role string // "agent" or "gateway"
	// State is the agent's state folder: its user's home, removed on
	// purge. The gateway keeps no state: its user's home is /nonexistent.
	State string
}

var scriptsOf = map[string]packageScripts{
	"oxbroker":         {Name: "oxbroker", Role: "agent", State: exampleDirs["linux"].State},
	"oxbroker-gateway": {Name: "oxbroker-gateway", Role: "gateway"},
}

// MaintainerScripts renders the maintainer scripts of Linux package pkg
// (one of Packages), by name (preinstall, postinstall, preremove,
// postremove). root is the repository.
func MaintainerScripts(root, pkg string) (map[string][]byte, error) {
	data, ok := scriptsOf[pkg]
	if !ok {
		return nil, fmt.Errorf("no maintainer scripts for package %q", pkg)
	}
	out := make(map[string][]byte, len(maintainerScripts))
	for _, name := range maintainerScripts {
		src, err := os.ReadFile(filepath.Join(root, "packaging", "linux", "scripts", name+".sh.tmpl"))
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, err
		}
		out[name] = b.Bytes()
	}
	return out, nil
}
