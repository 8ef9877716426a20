package packaging

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options is what Build needs.
type Options struct {
	// Version is x.y.z or x.y.z-pre (semver, without a leading "v"); it
	// names the files and is stamped into the binaries.
	Version string
	// Commit is stamped into the binaries beside Version.
	Commit string
	// Root is the repository; Dist the output folder, emptied first.
	Root, Dist string
	// Go is the go command ("go" when empty); NFPM the nfpm command.
	Go, NFPM string
	// Signer Authenticode-signs the Windows executables; nil leaves them unsigned.
	Signer *Signer
	// SourceDate is the modification time of every file in the packages
	// and archives, so that a rebuild of the same commit gives the same bytes.
	SourceDate time.Time
	// Jobs bounds the go builds and nfpm runs at once (GOMAXPROCS when 0).
	Jobs int
	// Log receives one line per step, with its duration.
	Log io.Writer
	// Platforms, when set, limits the release to these "os/arch" targets
	// (the live test builds only linux/amd64). The release is all of them.
	Platforms []string
}

// Packages are the Linux packages, each the binary of the same name.
var Packages = []string{"oxbroker", "oxbroker-gateway"}

// target is one platform the release has binaries for.
type target struct {
	OS, Arch string
	Cmds     []string // the commands under cmd/ built for it
}

var targets = []target{
	{"linux", "amd64", Packages},
	{"linux", "arm64", Packages},
	{"windows", "amd64", []string{"oxbroker"}},
	{"windows", "arm64", []string{"oxbroker"}},
	{"darwin", "arm64", []string{"oxbroker"}},
}

// versionRE is what Linux package managers and file names accept.
var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$`)

// CheckVersion refuses what cannot be a package version.
func CheckVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q: want x.y.z or x.y.z-pre (digits, letters and dots after the dash), e.g. make package VERSION=1.2.3", v)
	}
	return nil
}

// Build writes the release into o.Dist: see README.md for the list.
func Build(ctx context.Context, o Options) error {
	if err := CheckVersion(o.Version); err != nil {
		return err
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.SourceDate.IsZero() {
		o.SourceDate = time.Now()
	}
	o.SourceDate = o.SourceDate.UTC().Truncate(time.Second)
	root, err := filepath.Abs(o.Root) // nfpm runs in the stage folder, not in Root
	if err != nil {
		return err
	}
	o.Root = root
	if d := filepath.Clean(o.Dist); !filepath.IsAbs(d) || d == filepath.Dir(d) || d == filepath.Clean(o.Root) {
		return fmt.Errorf("dist %q: want an absolute path of its own folder, which Build empties", o.Dist)
	}
	if err := os.RemoveAll(o.Dist); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "oxpackage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.MkdirAll(o.Dist, 0o755); err != nil {
		return err
	}
	b := &builder{Options: o, work: work, targets: targets}
	if len(o.Platforms) > 0 {
		b.targets = nil
		for _, t := range targets {
			if slices.Contains(o.Platforms, t.OS+"/"+t.Arch) {
				b.targets = append(b.targets, t)
			}
		}
		if len(b.targets) != len(o.Platforms) {
			return fmt.Errorf("platforms %q: want some of %s", o.Platforms, platformList())
		}
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"binaries", b.binaries},
		{"sign", b.sign},
		{"staged files", b.stage},
		{"deb and rpm", b.linuxPackages},
		{"zip and tar.gz", b.archives},
		{"msi", b.msis},
		{"SHA256SUMS", b.checksums},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(o.Log, "%-16s %5.1fs\n", s.name, time.Since(start).Seconds())
	}
	return nil
}

type builder struct {
	Options
	work    string   // scratch: bin/<os>_<arch>/, stage/<os>/
	targets []target // what this build makes: targets, or those of Platforms
}

// platformList names every target, for an error message.
func platformList() string {
	var names []string
	for _, t := range targets {
		names = append(names, t.OS+"/"+t.Arch)
	}
	return strings.Join(names, ", ")
}

func (b *builder) binDir(t target) string {
	return filepath.Join(b.work, "bin", t.OS+"_"+t.Arch)
}

func (b *builder) stageDir(goos string) string { return filepath.Join(b.work, "stage", goos) }

// exe is the file name of cmd for t.
func exe(t target, cmd string) string {
	if t.OS == "windows" {
		return cmd + ".exe"
	}
	return cmd
}

// binaries builds every target's commands: static (no cgo), without
// local paths, with the version and commit stamped in.
func (b *builder) binaries(ctx context.Context) error {
	ldflags := "-s -w -X main.version=" + b.Version + " -X main.commit=" + b.Commit
	return b.parallel(ctx, len(b.targets), func(ctx context.Context, i int) error {
		t := b.targets[i]
		args := []string{"build", "-trimpath", "-ldflags", ldflags, "-o", b.binDir(t) + string(filepath.Separator)}
		for _, c := range t.Cmds {
			args = append(args, "./cmd/"+c)
		}
		cmd := exec.CommandContext(ctx, b.Go, args...)
		cmd.Dir = b.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
		if err := run(cmd); err != nil {
			return fmt.Errorf("%s/%s: %w", t.OS, t.Arch, err)
		}
		return nil
	})
}

func (b *builder) sign(ctx context.Context) error {
	if b.Signer == nil {
		fmt.Fprintln(b.Log, "sign: SIGN_CERT and SIGN_KEY are not set; the Windows executables are not signed")
		return nil
	}
	for _, t := range b.targets {
		if t.OS != "windows" {
			continue
		}
		for _, c := range t.Cmds {
			if err := b.Signer.Sign(ctx, filepath.Join(b.binDir(t), exe(t, c))); err != nil {
				return err
			}
		}
	}
	return nil
}

// stage writes the files Build renders: each OS's example agent config,
// to stage/<os>/oxbroker.yaml, and the maintainer scripts of each Linux
// package, to stage/linux/scripts/<package>/.
func (b *builder) stage(context.Context) error {
	for _, goos := range []string{"linux", "windows", "darwin"} {
		data, err := AgentExample(b.Root, goos)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(b.stageDir(goos), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.stageDir(goos), "oxbroker.yaml"), data, 0o644); err != nil {
			return err
		}
	}
	for _, pkg := range Packages {
		scripts, err := MaintainerScripts(b.Root, pkg)
		if err != nil {
			return err
		}
		dir := filepath.Join(b.stageDir("linux"), "scripts", pkg)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for name, data := range scripts {
			if err := os.WriteFile(filepath.Join(dir, name+".sh"), data, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// linuxPackages runs nfpm for each package, architecture and format, in
// stage/linux. The nfpm configs (linux/nfpm-*.yaml) name the maintainer
// scripts relative to it, and their other inputs through the variables
// set here.
func (b *builder) linuxPackages(ctx context.Context) error {
	type job struct{ pkg, arch, format string }
	var jobs []job
	for _, pkg := range Packages {
		for _, t := range b.targets {
			if t.OS == "linux" {
				for _, format := range []string{"deb", "rpm"} {
					jobs = append(jobs, job{pkg, t.Arch, format})
				}
			}
		}
	}
	return b.parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		out := filepath.Join(b.Dist, fmt.Sprintf("%s_%s_linux_%s.%s", j.pkg, b.Version, j.arch, j.format))
		cmd := exec.CommandContext(ctx, b.NFPM, "package",
			"--config", filepath.Join(b.Root, "packaging", "linux", "nfpm-"+j.pkg+".yaml"),
			"--packager", j.format, "--target", out)
		cmd.Dir = b.stageDir("linux")
		cmd.Env = append(os.Environ(),
			"ROOT="+b.Root,
			"VERSION="+b.Version,
			"ARCH="+j.arch,
			"BINDIR="+b.binDir(target{OS: "linux", Arch: j.arch}),
			"STAGE="+b.stageDir("linux"),
			"SOURCE_DATE_EPOCH="+strconv.FormatInt(b.SourceDate.Unix(), 10))
		if err := run(cmd); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(out), err)
		}
		return nil
	})
}

// archiveFile is one file of a zip or tarball.
type archiveFile struct {
	name string
	src  string
	mode os.FileMode
}

// archives writes the Windows zips and the macOS tarball: the agent, its
// example config and, for Windows, install.ps1, at the top level.
func (b *builder) archives(context.Context) error {
	for _, t := range b.targets {
		if t.OS == "linux" {
			continue
		}
		files := []archiveFile{
			{exe(t, "oxbroker"), filepath.Join(b.binDir(t), exe(t, "oxbroker")), 0o755},
			{"config.example.yaml", filepath.Join(b.stageDir(t.OS), "oxbroker.yaml"), 0o644},
		}
		name := fmt.Sprintf("oxbroker_%s_%s_%s", b.Version, t.OS, t.Arch)
		var err error
		if t.OS == "windows" {
			files = append(files, archiveFile{"install.ps1", filepath.Join(b.Root, "packaging", "windows", "install.ps1"), 0o644})
			err = writeZip(filepath.Join(b.Dist, name+".zip"), files, b.SourceDate)
		} else {
			err = writeTarGz(filepath.Join(b.Dist, name+".tar.gz"), files, b.SourceDate)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeZip(dst string, files []archiveFile, mtime time.Time) (err error) {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	zw := zip.NewWriter(f)
	for _, af := range files {
		data, err := os.ReadFile(af.src)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: af.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(af.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return zw.Close()
}

func writeTarGz(dst string, files []archiveFile, mtime time.Time) (err error) {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, af := range files {
		data, err := os.ReadFile(af.src)
		if err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: af.name, Mode: int64(af.mode), Size: int64(len(data)),
			ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// checksums writes SHA256SUMS over every file in Dist, in the format
// "sha256sum -c" reads.
func (b *builder) checksums(context.Context) error {
	entries, err := os.ReadDir(b.Dist)
	if err != nil {
		return err
	}
	var lines []string
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "SHA256SUMS" {
			continue
		}
		f, err := os.Open(filepath.Join(b.Dist, e.Name()))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		lines = append(lines, hex.EncodeToString(h.Sum(nil))+"  "+e.Name()+"\n")
	}
	return os.WriteFile(filepath.Join(b.Dist, "SHA256SUMS"), []byte(strings.Join(lines, "")), 0o644)
}

// parallel runs do(0..n-1), at most Jobs at once, and returns the first
// error; the others' contexts are cancelled then.
func (b *builder) parallel(ctx context.Context, n int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, b.Jobs)
	var (
		mu    sync.Mutex // guards first
		first error
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return
			}
			if err := do(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// run runs cmd and, when it fails, returns its output with the error.
func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
