package packaging

import (
	"debug/pe"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// msiTables dumps the tables of an .msi with msidump (msitools) and reads
// each as rows of columns by name.
func msiTables(t *testing.T, path string) map[string][]map[string]string {
	t.Helper()
	dir := t.TempDir()
	command(t, "", "msidump", "--tables", "--directory", dir, path)
	files, err := filepath.Glob(filepath.Join(dir, "*.idt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("msidump wrote no tables (%v)", err)
	}
	tables := map[string][]map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
		if len(lines) < 3 {
			continue
		}
		cols := strings.Split(lines[0], "\t")
		name := strings.Split(lines[2], "\t")[0]
		tables[name] = []map[string]string{}
		for _, line := range lines[3:] {
			if line == "" {
				continue
			}
			row := map[string]string{}
			for i, v := range strings.Split(line, "\t") {
				if i < len(cols) {
					row[cols[i]] = v
				}
			}
			tables[name] = append(tables[name], row)
		}
	}
	return tables
}

// find is the row of table whose column is value.
func find(t *testing.T, tables map[string][]map[string]string, table, column, value string) map[string]string {
	t.Helper()
	for _, row := range tables[table] {
		if row[column] == value {
			return row
		}
	}
	t.Fatalf("table %s has no row with %s %q: %v", table, column, value, tables[table])
	return nil
}

// TestWindowsMSI reads the installers' tables: what each promises an
// administrator (docs/operations.md 2.5) is a row there.
func TestWindowsMSI(t *testing.T) {
	d := distOrSkip(t)
	for arch, machine := range map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64} {
		t.Run(arch, func(t *testing.T) {
			path := d.path("oxbroker_%s_windows_%s.msi", d.version, arch)
			info := command(t, "", "msiinfo", "suminfo", path)
			if want := "Template: " + msiPlatforms[arch] + ";1033"; !strings.Contains(info, want) {
				t.Errorf("suminfo: no %q:\n%s", want, info)
			}
			tb := msiTables(t, path)
			prop := func(name string) string { return find(t, tb, "Property", "Property", name)["Value"] }
			if got := strings.ToUpper(prop("UpgradeCode")); got != UpgradeCodes[arch] {
				t.Errorf("UpgradeCode %s, want the stable %s", got, UpgradeCodes[arch])
			}
			mv, _ := msiVersion(d.version)
			if got := prop("ProductVersion"); got != mv {
				t.Errorf("ProductVersion %s, want %s", got, mv)
			}
			if got := prop("ALLUSERS"); got != "1" {
				t.Errorf("ALLUSERS %s, want 1 (per machine)", got)
			}
			for _, p := range []string{"CONFIG", "START"} {
				if !slices.Contains(strings.Split(prop("SecureCustomProperties"), ";"), p) {
					t.Errorf("%s is not a secure property: a managed install would drop it", p)
				}
			}

			// Where the files go.
			dir := func(id string) map[string]string { return find(t, tb, "Directory", "Directory", id) }
			if r := dir("INSTALLDIR"); r["Directory_Parent"] != "ProgramFiles64Folder" || r["DefaultDir"] != "OXBroker" {
				t.Errorf("INSTALLDIR: %v, want OXBroker in ProgramFiles64Folder", r)
			}
			if r := dir("DATADIR"); r["Directory_Parent"] != "CommonAppDataFolder" || r["DefaultDir"] != "OXBroker" {
				t.Errorf("DATADIR: %v, want OXBroker in CommonAppDataFolder (ProgramData)", r)
			}
			comp := func(id string) (map[string]string, int) {
				r := find(t, tb, "Component", "Component", id)
				a, _ := strconv.Atoi(r["Attributes"])
				return r, a
			}
			if r, a := comp("Binary"); r["Directory_"] != "INSTALLDIR" || a&0x100 == 0 {
				t.Errorf("the binary's component: %v, want 64-bit in INSTALLDIR", r)
			}
			if r, a := comp("Config"); r["Directory_"] != "DATADIR" || a&0x10 == 0 || a&0x80 == 0 {
				t.Errorf("the config's component: %v, want Permanent (0x10, kept on uninstall) and NeverOverwrite (0x80) in DATADIR", r)
			}
			if r, _ := comp("Start"); r["Condition"] != `START = "1"` {
				t.Errorf("the Start component's condition %q, want START = \"1\"", r["Condition"])
			}
			for _, f := range []string{"oxbroker.exe", "config.yaml", "config.example.yaml"} {
				find(t, tb, "File", "File", f)
			}

			// The service and its recovery.
			svc := find(t, tb, "ServiceInstall", "Name", "oxbroker")
			for col, want := range map[string]string{"StartType": "2", "ServiceType": "16", "StartName": "LocalSystem",
				"Arguments": `run --config "[CONFIG]"`, "Component_": "Binary"} {
				if svc[col] != want {
					t.Errorf("ServiceInstall %s: %q, want %q", col, svc[col], want)
				}
			}
			if ctl := find(t, tb, "ServiceControl", "ServiceControl", "ServiceStopRemove"); ctl["Event"] != "162" {
				t.Errorf("ServiceControl events %s, want 162: stop on install and uninstall, delete on uninstall", ctl["Event"])
			}
			fa := find(t, tb, "MsiServiceConfigFailureActions", "Name", "oxbroker")
			if fa["Actions"] != "1[~]1[~]1" || fa["DelayActions"] != "5000[~]5000[~]5000" || fa["ResetPeriod"] != "86400" || fa["Event"] != "5" {
				t.Errorf("recovery actions: %v, want restart after 5 s, three times, reset after a day, at install and reinstall", fa)
			}
			find(t, tb, "InstallExecuteSequence", "Action", "MsiConfigureServices")

			// The config's ACL: SYSTEM and Administrators, nobody else.
			for _, obj := range []string{"DATADIR", "config.yaml"} {
				if r := find(t, tb, "MsiLockPermissionsEx", "LockObject", obj); r["SDDL"] != DataDirSDDL {
					t.Errorf("ACL of %s: %q, want %q", obj, r["SDDL"], DataDirSDDL)
				}
			}
			if !strings.HasPrefix(DataDirSDDL, "D:P") || strings.Count(DataDirSDDL, "(A;") != 2 ||
				!strings.Contains(DataDirSDDL, ";;;SY)") || !strings.Contains(DataDirSDDL, ";;;BA)") {
				t.Errorf("%s: want a protected DACL allowing SY and BA only", DataDirSDDL)
			}
			// Upgrades in place, the same x.y.z included; no downgrade.
			up := find(t, tb, "Upgrade", "ActionProperty", "WIX_UPGRADE_DETECTED")
			if a, _ := strconv.Atoi(up["Attributes"]); up["VersionMax"] != mv || a&0x200 == 0 {
				t.Errorf("upgrade row %v: want versions up to %s inclusive", up, mv)
			}
			find(t, tb, "InstallExecuteSequence", "Action", "RemoveExistingProducts")

			// The binary inside is the release's, for this architecture.
			out := t.TempDir()
			command(t, "", "msiextract", "--directory", out, path)
			exes, _ := filepath.Glob(filepath.Join(out, "OXBroker", "oxbroker.exe"))
			if len(exes) != 1 {
				t.Fatalf("msiextract: want one oxbroker.exe, got %q", exes)
			}
			exe, err := os.ReadFile(exes[0])
			if err != nil {
				t.Fatal(err)
			}
			checkWindowsExe(t, exe, machine, d.version)
		})
	}
}

func TestMSIVersion(t *testing.T) {
	for in, want := range map[string]string{"1.2.3": "1.2.3", "0.0.0-ci": "0.0.0", "255.255.65535-rc1": "255.255.65535", "256.0.0": "", "1.2.65536": ""} {
		got, err := msiVersion(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestUpgradeCodesStable: changing an UpgradeCode would make the next
// release install beside the old one instead of upgrading it.
func TestUpgradeCodesStable(t *testing.T) {
	want := map[string]string{"amd64": "{0C6A4B1E-5E0D-4F7B-9B2A-71D3C0A8E101}", "arm64": "{0C6A4B1E-5E0D-4F7B-9B2A-71D3C0A8E102}"}
	for arch, code := range want {
		if UpgradeCodes[arch] != code {
			t.Errorf("%s: UpgradeCode %s, want %s, which installed agents carry", arch, UpgradeCodes[arch], code)
		}
	}
	if a, b := (msiFields{Arch: "amd64"}).Guid("Config"), (msiFields{Arch: "amd64"}).Guid("Config"); a != b {
		t.Errorf("component GUIDs differ between builds: %s, %s", a, b)
	}
}
