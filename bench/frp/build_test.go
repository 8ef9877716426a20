package frp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildUsesCache: with both binaries in the cache, Run returns them
// without running the go command (which here does not exist).
func TestBuildUsesCache(t *testing.T) {
	cache := t.TempDir()
	bin := filepath.Join(cache, "frp-"+Version, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"frps", "frpc"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Build{CacheDir: cache, Go: filepath.Join(cache, "no-go")}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Binaries{Frps: filepath.Join(bin, "frps"), Frpc: filepath.Join(bin, "frpc")}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestBuildFailsClearly: when the module cannot be had (no proxy, as on
// a machine without network), Run says so with ErrBuild and the go
// command's reason, and leaves no binary that a later run would take.
func TestBuildFailsClearly(t *testing.T) {
	cache := t.TempDir()
	b := Build{CacheDir: cache, Version: "v0.0.0-20000101000000-000000000000", Env: []string{"GOPROXY=off", "GOFLAGS=-mod=mod"}}
	_, err := b.Run(context.Background())
	if !errors.Is(err, ErrBuild) {
		t.Fatalf("got %v, want ErrBuild", err)
	}
	for _, want := range []string{"go mod download", Module, "GOPROXY=off"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(cache, "*", "bin", "*")); len(matches) > 0 {
		t.Errorf("a failed build left %v", matches)
	}
}
