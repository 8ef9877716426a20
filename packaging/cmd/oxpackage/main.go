// Command oxpackage builds the release into dist/: "make package
// VERSION=x.y.z" runs it. See packaging/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oxsecurity/oxbroker/packaging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oxpackage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var o packaging.Options
	flag.StringVar(&o.Version, "version", "", "version x.y.z of the release (a leading v is dropped)")
	flag.StringVar(&o.Commit, "commit", "", "commit stamped into the binaries (default: git rev-parse --short HEAD)")
	flag.StringVar(&o.Dist, "dist", "dist", "output folder; emptied first")
	flag.StringVar(&o.NFPM, "nfpm", "", "nfpm command (default: built from packaging/tools/go.mod)")
	flag.IntVar(&o.Jobs, "j", 0, "builds at once (default: GOMAXPROCS)")
	platforms := flag.String("platforms", "", "comma-separated os/arch targets to build, e.g. linux/amd64 (default: the whole release)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *platforms != "" {
		o.Platforms = strings.Split(*platforms, ",")
	}
	o.Version = strings.TrimPrefix(o.Version, "v")
	if err := packaging.CheckVersion(o.Version); err != nil {
		return err
	}
	root, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("find the repository: %w", err)
	}
	o.Root = root
	if o.Commit == "" {
		if o.Commit, err = git("rev-parse", "--short", "HEAD"); err != nil {
			return err
		}
	}
	if o.Dist, err = filepath.Abs(o.Dist); err != nil {
		return err
	}
	if o.SourceDate, err = sourceDate(); err != nil {
		return err
	}
	if o.Signer, err = packaging.SignerFromEnv(os.Getenv); err != nil {
		return err
	}
	o.Log = os.Stderr
	if o.NFPM == "" {
		dir, err := os.MkdirTemp("", "oxpackage-nfpm-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.NFPM = filepath.Join(dir, "nfpm")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(root, "packaging", "tools"),
			"build", "-o", o.NFPM, "github.com/goreleaser/nfpm/v2/cmd/nfpm")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build nfpm: %w", err)
		}
		fmt.Fprintf(os.Stderr, "%-16s %5.1fs\n", "nfpm", time.Since(start).Seconds())
	}
	start := time.Now()
	if err := packaging.Build(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dist: %s (%.0fs)\n", o.Dist, time.Since(start).Seconds())
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH when set, else the time of the last
// commit, so that rebuilding a commit gives the same packages.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = git("log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, err
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(sec, 0), nil
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
