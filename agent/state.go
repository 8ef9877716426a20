package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/oxsecurity/oxbroker/internal/atomicfile"
)

var agentIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ReadAgentID returns the agent id kept in dir/agent-id, or "" when there
// is none yet or it is damaged. Unlike the agent's start, it creates
// nothing: `oxbroker check` announces the id the agent will use.
func ReadAgentID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "agent-id"))
	if id := strings.TrimSpace(string(b)); err == nil && agentIDPattern.MatchString(id) {
		return id
	}
	return ""
}

// loadAgentID returns the persistent agent id kept in dir/agent-id,
// creating it (and dir) on first start. The id lets the gateway tell an
// agent's restarts from a second agent of the same broker.
func loadAgentID(dir string) (string, error) {
	path := filepath.Join(dir, "agent-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if agentIDPattern.MatchString(id) {
			return id, nil
		}
		// A damaged file is replaced rather than trusted.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read agent id: %w", err)
	}
	raw := make([]byte, 16)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("write agent id: %w", err)
	}
	return id, nil
}
