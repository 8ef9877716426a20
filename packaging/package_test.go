package packaging

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dist is the folder of a built release and its version.
type dist struct {
	dir, version string
}

// distOrSkip returns the release that "make package" built: in
// $OXBROKER_DIST, where it must be ("make package-test"), else in ../dist,
// where it may not be (a plain "go test ./...").
func distOrSkip(t *testing.T) dist {
	t.Helper()
	dir := os.Getenv("OXBROKER_DIST")
	if dir == "" {
		dir = filepath.Join("..", "dist")
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			t.Skip("dist/ is missing: run make package VERSION=0.0.0-ci, then make package-test")
		}
	}
	debs, err := filepath.Glob(filepath.Join(dir, "oxbroker_*_linux_amd64.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("%s: want one oxbroker_<version>_linux_amd64.deb, got %q (%v); run make package VERSION=0.0.0-ci", dir, debs, err)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "oxbroker_"), "_linux_amd64.deb")
	return dist{dir, v}
}

func (d dist) path(format string, args ...any) string {
	return filepath.Join(d.dir, fmt.Sprintf(format, args...))
}

// release is every file "make package" writes, for version v.
func release(v string) []string {
	files := []string{"SHA256SUMS",
		"oxbroker_" + v + "_windows_amd64.zip", "oxbroker_" + v + "_windows_arm64.zip",
		"oxbroker_" + v + "_darwin_arm64.tar.gz",
		"oxbroker_" + v + "_windows_amd64.msi", "oxbroker_" + v + "_windows_arm64.msi"}
	for _, pkg := range Packages {
		for _, arch := range []string{"amd64", "arm64"} {
			for _, ext := range []string{"deb", "rpm"} {
				files = append(files, fmt.Sprintf("%s_%s_linux_%s.%s", pkg, v, arch, ext))
			}
		}
	}
	slices.Sort(files)
	return files
}

func command(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(need(t, name), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestReleaseFiles(t *testing.T) {
	d := distOrSkip(t)
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			got = append(got, e.Name())
		}
	}
	if want := release(d.version); !slices.Equal(got, want) {
		t.Errorf("dist/: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSHA256SUMS(t *testing.T) {
	d := distOrSkip(t)
	out := command(t, d.dir, "sha256sum", "--check", "--strict", "SHA256SUMS")
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, ok := strings.CutSuffix(line, ": OK")
		if !ok {
			t.Errorf("sha256sum --check: %q", line)
		}
		listed = append(listed, name)
	}
	slices.Sort(listed)
	want := slices.DeleteFunc(release(d.version), func(s string) bool { return s == "SHA256SUMS" })
	if !slices.Equal(listed, want) {
		t.Errorf("SHA256SUMS lists\n%s\nwant\n%s", strings.Join(listed, "\n"), strings.Join(want, "\n"))
	}
}

// packaged is one file a Linux package installs, as the package lists it.
type packaged struct {
	path, mode, owner, group string
}

// packagedFiles are the files and folders of each package, with the
// folders nfpm adds on the way to them left out.
var packagedFiles = map[string][]packaged{
	"oxbroker": {
		{"/etc/oxbroker", "drwxr-x---", "root", "oxbroker"},
		{"/etc/oxbroker/config.yaml", "-rw-r-----", "root", "oxbroker"},
		{"/usr/bin/oxbroker", "-rwxr-xr-x", "root", "root"},
		{"/usr/lib/systemd/system/oxbroker.service", "-rw-r--r--", "root", "root"},
		{"/var/lib/oxbroker", "drwxr-x---", "oxbroker", "oxbroker"},
	},
	"oxbroker-gateway": {
		{"/etc/oxbroker-gateway", "drwxr-x---", "root", "oxbroker-gateway"},
		{"/etc/oxbroker-gateway/config.yaml", "-rw-r-----", "root", "oxbroker-gateway"},
		{"/usr/bin/oxbroker-gateway", "-rwxr-xr-x", "root", "root"},
		{"/usr/lib/systemd/system/oxbroker-gateway.service", "-rw-r--r--", "root", "root"},
	},
}

// sharedDirs are folders other packages own too.
var sharedDirs = []string{"/etc", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/systemd", "/usr/lib/systemd/system", "/var", "/var/lib"}

func TestDebContents(t *testing.T) {
	d := distOrSkip(t)
	for _, pkg := range Packages {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(pkg+"_"+arch, func(t *testing.T) {
				deb := d.path("%s_%s_linux_%s.deb", pkg, d.version, arch)
				var got []packaged
				for _, line := range strings.Split(strings.TrimSpace(command(t, "", "dpkg-deb", "--contents", deb)), "\n") {
					// drwxr-x--- root/oxbroker 0 2026-01-01 00:00 ./etc/oxbroker/
					f := strings.Fields(line)
					if len(f) != 6 {
						t.Fatalf("dpkg-deb --contents: %q", line)
					}
					owner, group, _ := strings.Cut(f[1], "/")
					p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
					if !slices.Contains(sharedDirs, p) {
						got = append(got, packaged{p, f[0], owner, group})
					}
				}
				if want := packagedFiles[pkg]; !slices.Equal(got, want) {
					t.Errorf("got\n%v\nwant\n%v", got, want)
				}
				for field, want := range map[string]string{"Package": pkg, "Architecture": arch} {
					if got := strings.TrimSpace(command(t, "", "dpkg-deb", "--field", deb, field)); got != want {
						t.Errorf("%s: got %q, want %q", field, got, want)
					}
				}
				ctl := t.TempDir()
				command(t, "", "dpkg-deb", "--control", deb, ctl)
				conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
				if want := "/etc/" + pkg + "/config.yaml\n"; err != nil || string(conffiles) != want {
					t.Errorf("conffiles: got %q (%v), want %q", conffiles, err, want)
				}
				for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
					if fi, err := os.Stat(filepath.Join(ctl, s)); err != nil || fi.Mode()&0o111 == 0 {
						t.Errorf("%s: %v, want an executable script", s, err)
					}
				}
			})
		}
	}
}

func TestRPMContents(t *testing.T) {
	d := distOrSkip(t)
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}
	for _, pkg := range Packages {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(pkg+"_"+arch, func(t *testing.T) {
				rpm := d.path("%s_%s_linux_%s.rpm", pkg, d.version, arch)
				list := strings.Fields(command(t, "", "rpm", "-qpl", rpm))
				var want []string
				for _, f := range packagedFiles[pkg] {
					want = append(want, f.path)
				}
				if !slices.Equal(list, want) {
					t.Errorf("rpm -qpl: got %q, want %q", list, want)
				}
				// Modes, owners and config flags ("c" config, "n" noreplace).
				out := command(t, "", "rpm", "-qp", "--qf",
					`[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]`, rpm)
				for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
					f := strings.Fields(line)
					w := packagedFiles[pkg][i]
					flags := ""
					if strings.HasSuffix(w.path, "/config.yaml") {
						flags = "cn"
					}
					if got := append(f, "")[:5]; !slices.Equal(got, []string{w.path, w.mode, w.owner, w.group, flags}) {
						t.Errorf("rpm file: got %q, want %s %s %s %s %q", line, w.path, w.mode, w.owner, w.group, flags)
					}
				}
				if got := command(t, "", "rpm", "-qp", "--qf", "%{NAME} %{ARCH}", rpm); got != pkg+" "+rpmArch[arch] {
					t.Errorf("name and arch: got %q", got)
				}
				scripts := command(t, "", "rpm", "-qp", "--scripts", rpm)
				for _, s := range []string{"preinstall", "postinstall", "preuninstall", "postuninstall"} {
					if !strings.Contains(scripts, s+" scriptlet") {
						t.Errorf("no %s scriptlet", s)
					}
				}
			})
		}
	}
}

func TestWindowsZip(t *testing.T) {
	d := distOrSkip(t)
	for arch, machine := range map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64} {
		t.Run(arch, func(t *testing.T) {
			path := d.path("oxbroker_%s_windows_%s.zip", d.version, arch)
			var names []string
			for _, line := range strings.Split(command(t, "", "unzip", "-Z1", path), "\n") {
				if line != "" {
					names = append(names, line)
				}
			}
			if want := []string{"oxbroker.exe", "config.example.yaml", "install.ps1"}; !slices.Equal(names, want) {
				t.Errorf("unzip -Z1: got %q, want %q", names, want)
			}
			checkWindowsExe(t, unzipFile(t, path, "oxbroker.exe"), machine, d.version)
		})
	}
}

func TestDarwinTarball(t *testing.T) {
	d := distOrSkip(t)
	files := untar(t, d.path("oxbroker_%s_darwin_arm64.tar.gz", d.version))
	var names []string
	for _, f := range files {
		names = append(names, fmt.Sprintf("%s %v", f.Name, f.FileInfo().Mode()))
	}
	if want := []string{"oxbroker -rwxr-xr-x", "config.example.yaml -rw-r--r--"}; !slices.Equal(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
	exe := files[0].data
	f, err := macho.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	if f.Cpu != macho.CpuArm64 {
		t.Errorf("cpu: got %v, want arm64", f.Cpu)
	}
	checkBuild(t, exe, d.version)
}

// TestLinuxBinaries: static, for the package's architecture, stamped.
func TestLinuxBinaries(t *testing.T) {
	d := distOrSkip(t)
	for _, pkg := range Packages {
		for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
			t.Run(pkg+"_"+arch, func(t *testing.T) {
				root := t.TempDir()
				command(t, "", "dpkg-deb", "--extract", d.path("%s_%s_linux_%s.deb", pkg, d.version, arch), root)
				exe, err := os.ReadFile(filepath.Join(root, "usr", "bin", pkg))
				if err != nil {
					t.Fatal(err)
				}
				f, err := elf.NewFile(bytes.NewReader(exe))
				if err != nil {
					t.Fatal(err)
				}
				if f.Machine != machine {
					t.Errorf("machine: got %v, want %v", f.Machine, machine)
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP {
						t.Error("has an ELF interpreter: not a static binary")
					}
				}
				checkBuild(t, exe, d.version)
			})
		}
	}
}

// checkWindowsExe checks a Windows agent of the release: built for
// machine, as checkBuild wants.
func checkWindowsExe(t *testing.T, exe []byte, machine uint16, version string) {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != machine {
		t.Errorf("machine: got %#x, want %#x", f.Machine, machine)
	}
	checkBuild(t, exe, version)
}

// checkBuild reads the build settings Go records in a binary of any
// platform (no cgo, no local paths) and looks for the version, which
// -ldflags -X put among its strings (with -trimpath, Go does not record
// -ldflags in the build settings).
func checkBuild(t *testing.T, exe []byte, version string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, exe, 0o644); err != nil {
		t.Fatal(err)
	}
	out := command(t, "", "go", "version", "-m", path)
	for _, want := range []string{"build\tCGO_ENABLED=0", "build\t-trimpath=true", "build\t-ldflags="} {
		if strings.Contains(out, want) != (want != "build\t-ldflags=") {
			t.Errorf("go version -m: want CGO_ENABLED=0 and -trimpath=true (which leaves -ldflags out), got\n%s", out)
			break
		}
	}
	if !bytes.Contains(exe, []byte(version)) {
		t.Errorf("the version %s is not in the binary", version)
	}
	// The live test's fault switch (cmd/oxbroker/fault_livetest.go) is
	// built only with -tags livetest: a release must not carry it.
	if bytes.Contains(exe, []byte("OXBROKER_LIVETEST_FAULT")) || bytes.Contains(exe, []byte("HangForLiveTest")) {
		t.Error("the binary holds the live test's fault switch: it was built with -tags livetest")
	}
	if strings.Contains(out, "-tags") {
		t.Errorf("built with build tags:\n%s", out)
	}
}

func unzipFile(t *testing.T, path, name string) []byte {
	t.Helper()
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	r, err := z.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type tarFile struct {
	*tar.Header
	data []byte
}

func untar(t *testing.T, path string) []tarFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var files []tarFile
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, tarFile{h, data})
	}
}
