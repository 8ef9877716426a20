package config

import (
	"os"
	"path/filepath"
)

func defaultAgentPath() string { return filepath.Join(defaultStateDir(), "config.yaml") }

func defaultStateDir() string {
	// ProgramData is set on every Windows system; the fallback keeps a
	// service with a stripped environment from using a relative path.
	dir := os.Getenv("ProgramData")
	if dir == "" {
		dir = `C:\ProgramData`
	}
	return filepath.Join(dir, "OXBroker")
}
