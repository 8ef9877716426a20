package main

import (
	"fmt"
	"io"
	"os"

	"github.com/oxsecurity/oxbroker/config"
)

// warnServiceUser warns, when root runs `config validate` or `check` and
// the service runs as another user (serviceUser), of each file the config
// names that this user could not read, with the command that lets it:
// root reads every file, so the check would pass where the service fails.
func warnServiceUser(w io.Writer, path string, cfg *config.Agent) {
	if os.Geteuid() != 0 {
		return
	}
	if u := serviceUser(); u != "" {
		for _, p := range unreadableByService(u, path, cfg) {
			fmt.Fprintf(w, "%s: warning: %s\n", path, p)
		}
	}
}

// unreadableByService lists the files of the config at path (itself, the
// token and CA files) that user username could not read, as
// "key: the service's user ...; run: ..." lines.
func unreadableByService(username, path string, cfg *config.Agent) []string {
	var out []string
	for _, f := range append([]keyPath{{"--config", path}}, configFiles(cfg)...) {
		if f.Path == "" || f.Key == "state_dir" {
			continue
		}
		why, err := config.UnreadableBy(username, f.Path)
		if err != nil || why == "" {
			continue
		}
		out = append(out, fmt.Sprintf("%s: the service would fail: %s", f.Key, why))
	}
	return out
}
