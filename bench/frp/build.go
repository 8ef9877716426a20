// Package frp builds and configures frp (github.com/fatedier/frp), the
// reverse tunnel the benchmark measures the broker against: frps on the
// gateway's side, frpc on the agent's, a tcp proxy to the Jira stand-in
// over frp's default transport (TCP, tcpMux, TLS) or over QUIC, and an
// http proxy that sets the Jira credentials on frps's side.
//
// Nothing of frp is part of this repository: Build takes the module from
// the Go module cache (downloading it through the module proxy when it is
// missing), copies it into a cache directory of its own, builds the two
// programs there with the module's own go.mod, and keeps the binaries.
package frp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The frp the benchmark measures.
const (
	Module  = "github.com/fatedier/frp"
	Version = "v0.70.1"
)

// Binaries are the paths of the built programs.
type Binaries struct {
	Frps, Frpc string
}

// Build describes where frp is built and with what.
type Build struct {
	// CacheDir holds one folder per version: src/ (the module's copy)
	// and bin/ (frps, frpc). DefaultCacheDir when empty.
	CacheDir string
	Version  string // Version when empty
	Go       string // the go command; "go" when empty
	// Env is added to the go command's environment (tests set GOPROXY).
	Env []string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

// DefaultCacheDir is oxbroker-bench in the user's cache directory
// (~/.cache/oxbroker-bench on Linux), outside the repository.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "oxbroker-bench")
}

// ErrBuild wraps every failure of Run, so that a caller can go on
// without frp and say why.
var ErrBuild = errors.New("frp not built")

// Run returns frps and frpc, building them only when either is missing
// from the cache. A failed build leaves no binary behind, so that the
// next run tries again.
func (b Build) Run(ctx context.Context) (Binaries, error) {
	b = b.withDefaults()
	dir := filepath.Join(b.CacheDir, "frp-"+b.Version)
	bins := Binaries{Frps: filepath.Join(dir, "bin", "frps"), Frpc: filepath.Join(dir, "bin", "frpc")}
	if isFile(bins.Frps) && isFile(bins.Frpc) {
		return bins, nil
	}
	src := filepath.Join(dir, "src")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		modDir, err := b.download(ctx)
		if err != nil {
			return Binaries{}, err
		}
		b.logf("frp %s: copying %s to %s", b.Version, modDir, src)
		if err := copyTree(modDir, src); err != nil {
			return Binaries{}, fmt.Errorf("%w: copy the module: %v", ErrBuild, err)
		}
	}
	for _, name := range []string{"frps", "frpc"} {
		out := filepath.Join(dir, "bin", name)
		if isFile(out) {
			continue
		}
		b.logf("frp %s: building %s (the module's go.mod governs its dependencies)", b.Version, name)
		tmp := out + ".tmp"
		// As frp's Makefile builds its releases, without the web assets.
		_, err := b.goCmd(ctx, src, "build", "-trimpath", "-ldflags", "-s -w",
			"-tags", name+",noweb", "-o", tmp, "./cmd/"+name)
		if err == nil {
			err = os.Rename(tmp, out)
		}
		if err != nil {
			os.Remove(tmp)
			return Binaries{}, fmt.Errorf("%w: go build ./cmd/%s: %v", ErrBuild, name, err)
		}
	}
	return bins, nil
}

func (b Build) withDefaults() Build {
	if b.CacheDir == "" {
		b.CacheDir = DefaultCacheDir()
	}
	if b.Version == "" {
		b.Version = Version
	}
	if b.Go == "" {
		b.Go = "go"
	}
	return b
}

func (b Build) logf(format string, args ...any) {
	if b.Logf != nil {
		b.Logf(format, args...)
	}
}

// download returns the module's folder in the module cache, fetching it
// from the module proxy when it is not there yet.
func (b Build) download(ctx context.Context) (string, error) {
	// Outside any module, so that no go.mod or go.work around the caller
	// takes part.
	tmp, err := os.MkdirTemp("", "frp-download-")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer os.RemoveAll(tmp)
	out, err := b.goCmd(ctx, tmp, "mod", "download", "-json", Module+"@"+b.Version)
	// On failure the go command still prints the JSON, with Error set.
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		err = errors.New(m.Error)
	}
	if err == nil && m.Dir == "" {
		err = fmt.Errorf("no Dir in %q", out)
	}
	if err != nil {
		return "", fmt.Errorf("%w: go mod download %s@%s: %v", ErrBuild, Module, b.Version, err)
	}
	return m.Dir, nil
}

// goCmd runs the go command in dir and returns its standard output; its
// error carries the last lines of the standard error.
func (b Build) goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.Go, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	cmd.Env = append(cmd.Env, b.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := lastLines(stderr.String(), 5); msg != "" {
			return stdout.Bytes(), fmt.Errorf("%v: %s", err, msg)
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// copyTree copies the module's files (read-only in the module cache) to
// dst, writable, through a temporary folder renamed at the end, so that
// an interrupted copy is never taken for a whole one.
func copyTree(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
		return nil // the module zip holds only files and folders
	})
	if err != nil {
		return err
	}
	os.RemoveAll(dst)
	return os.Rename(tmp, dst)
}
