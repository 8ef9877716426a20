package packaging

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"
)

// exampleDirs are, by GOOS, the folder the agent's config and token files
// live in and the agent's default state_dir (see config.DefaultAgentPath).
var exampleDirs = map[string]struct{ Config, State string }{
	"linux":   {"/etc/oxbroker", "/var/lib/oxbroker"},
	"windows": {`C:\ProgramData\OXBroker`, `C:\ProgramData\OXBroker`},
	"darwin":  {"/Library/Application Support/OXBroker", "/var/lib/oxbroker"},
}

// AgentExample renders config/oxbroker.yaml.tmpl, the commented example
// of the agent's config, with the paths of goos. root is the repository.
func AgentExample(root, goos string) ([]byte, error) {
	dirs, ok := exampleDirs[goos]
	if !ok {
		return nil, fmt.Errorf("no example config for %s", goos)
	}
	src, err := os.ReadFile(filepath.Join(root, "packaging", "config", "oxbroker.yaml.tmpl"))
	if err != nil {
		return nil, err
	}
	join := func(name string) string {
		if goos == "windows" {
			return dirs.Config + `\` + name
		}
		return path.Join(dirs.Config, name)
	}
	t, err := template.New("oxbroker.yaml").Option("missingkey=error").
		Funcs(template.FuncMap{"file": join}).Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]string{"OS": goos, "StateDir": dirs.State}); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if goos == "windows" {
		// Notepad before Windows 10 1809 shows a file with LF endings as one line.
		out = []byte(strings.ReplaceAll(string(out), "\n", "\r\n"))
	}
	return out, nil
}

// Uncomment returns an example config with its settings uncommented, as
// an administrator would: a block starts at a line "#key:" and goes on
// over the lines that start with "#  " (indented YAML, which may itself
// be a YAML comment). Prose comments ("# ...") stay. The tests use it to
// keep the examples valid configs.
func Uncomment(example []byte) []byte {
	var out []string
	in := false
	for _, line := range strings.Split(strings.ReplaceAll(string(example), "\r\n", "\n"), "\n") {
		switch {
		case len(line) > 1 && line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strings.Contains(line, ":"):
			in = true
			line = line[1:]
		case in && strings.HasPrefix(line, "#  "):
			line = line[1:]
		default:
			in = false
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n"))
}

// UncommentBlock returns example with one more block uncommented, as an
// administrator would: the one whose first line is "#" followed by first
// (such as "  - name: jira-dc", a site of its own after prose), and the
// lines after it that start with "#  ".
func UncommentBlock(example []byte, first string) []byte {
	lines := strings.Split(string(example), "\n")
	in := false
	for i, line := range lines {
		switch {
		case strings.TrimSuffix(line, "\r") == "#"+first || strings.HasPrefix(line, "#"+first+" "):
			in = true
		case in && strings.HasPrefix(line, "#  "):
		default:
			in = false
			continue
		}
		lines[i] = line[1:]
	}
	return []byte(strings.Join(lines, "\n"))
}
