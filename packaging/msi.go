package packaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// UpgradeCodes are the Windows installers' upgrade codes, one per
// architecture. They never change: Windows Installer finds the installed
// agent by it, to upgrade it in place.
var UpgradeCodes = map[string]string{
	"amd64": "{0C6A4B1E-5E0D-4F7B-9B2A-71D3C0A8E101}",
	"arm64": "{0C6A4B1E-5E0D-4F7B-9B2A-71D3C0A8E102}",
}

// msiPlatforms are the Summary Information platforms: wixl builds an x64
// package, which msiPost marks Arm64 for arm64.
var msiPlatforms = map[string]string{"amd64": "x64", "arm64": "Arm64"}

// DataDirSDDL is the ACL of %ProgramData%\OXBroker and its config:
// protected from inheritance, full control for SYSTEM and the
// Administrators group, nobody else.
const DataDirSDDL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// msiFields fill windows/oxbroker.wxs.
type msiFields struct {
	Version, MSIVersion, Arch string
	ProductCode, UpgradeCode  string
	Exe, Example              string
}

// Guid is the component GUID of name: stable across versions, as Windows
// Installer wants a component's to be, and apart per architecture.
func (f msiFields) Guid(name string) string {
	return nameGUID("oxbroker msi component " + f.Arch + " " + name)
}

// nameGUID is a GUID made from name (SHA-256, with the bits of a version
// 5 UUID), so that a build is reproducible.
func nameGUID(name string) string {
	h := sha256.Sum256([]byte(name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("{%x-%x-%x-%x-%x}", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// msiVersion is the ProductVersion Windows Installer compares: x.y.z of
// the version, without a pre-release (within its limits: 255.255.65535).
func msiVersion(v string) (string, error) {
	core, _, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	limits := []int{255, 255, 65535}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || i >= len(limits) || n > limits[i] {
			return "", fmt.Errorf("version %s: Windows Installer takes at most 255.255.65535", v)
		}
	}
	return core, nil
}

// msis writes oxbroker_<v>_windows_<arch>.msi for each Windows target:
// wixl builds it from windows/oxbroker.wxs, msiPost adds what wixl
// cannot express, and the Signer signs it as it signed the .exe.
func (b *builder) msis(ctx context.Context) error {
	tmpl, err := template.ParseFiles(filepath.Join(b.Root, "packaging", "windows", "oxbroker.wxs"))
	if err != nil {
		return err
	}
	mv, err := msiVersion(b.Version)
	if err != nil {
		return err
	}
	for _, t := range b.targets {
		if t.OS != "windows" {
			continue
		}
		dir := filepath.Join(b.work, "msi", t.Arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// wixl takes sources relative to the folder it runs in.
		for src, dst := range map[string]string{
			filepath.Join(b.binDir(t), exe(t, "oxbroker")):        "oxbroker.exe",
			filepath.Join(b.stageDir("windows"), "oxbroker.yaml"): "config.example.yaml",
		} {
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil {
				return err
			}
		}
		f := msiFields{Version: b.Version, MSIVersion: mv, Arch: t.Arch,
			ProductCode: nameGUID("oxbroker msi product " + t.Arch + " " + b.Version),
			UpgradeCode: UpgradeCodes[t.Arch],
			Exe:         "oxbroker.exe", Example: "config.example.yaml"}
		var wxs bytes.Buffer
		if err := tmpl.Execute(&wxs, f); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "oxbroker.wxs"), wxs.Bytes(), 0o644); err != nil {
			return err
		}
		out := filepath.Join(b.Dist, fmt.Sprintf("oxbroker_%s_windows_%s.msi", b.Version, t.Arch))
		cmd := exec.CommandContext(ctx, "wixl", "--arch", "x64", "--output", out, "oxbroker.wxs")
		cmd.Dir = dir
		if err := run(cmd); err != nil {
			return err
		}
		if err := msiPost(ctx, out, dir, t.Arch, mv); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(out), err)
		}
		if b.Signer != nil {
			if err := b.Signer.Sign(ctx, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// msiPost adds to the database what wixl 0.101 does not write:
//   - MsiServiceConfigFailureActions: the SCM restarts the service 5 s
//     after each failure (the failure count resets after a day), as
//     "oxbroker service install" asks; MsiConfigureServices applies it;
//   - MsiLockPermissionsEx: %ProgramData%\OXBroker and config.yaml are
//     readable by SYSTEM and Administrators only (DataDirSDDL);
//   - the config's component is Permanent (kept on uninstall) and
//     NeverOverwrite (an existing config.yaml, the administrator's, stays);
//   - the Start component installs only with START=1;
//   - an upgrade to the same x.y.z (a release after its pre-release)
//     is an upgrade, not a second product;
//   - the registry search for the remembered CONFIG reads the 64-bit view,
//     where the 64-bit component wrote it;
//   - CONFIG and START pass from the UI to the install (secure properties);
//   - the arm64 package's platform is Arm64.
func msiPost(ctx context.Context, msi, dir, arch, version string) error {
	const (
		permanent      = 0x10
		neverOverwrite = 0x80
		win64          = 0x100
		upgradeMigrate = 0x1   // msidbUpgradeAttributesMigrateFeatures
		maxInclusive   = 0x200 // msidbUpgradeAttributesVersionMaxInclusive
		regRaw64       = 0x2 | 0x10
		// msidbServiceConfigEventInstall | Reinstall: set at install and upgrade.
		eventInstallReinstall = 1 | 4
	)
	idts := map[string]string{
		"MsiServiceConfigFailureActions": "MsiServiceConfigFailureActions\tName\tEvent\tResetPeriod\tRebootMessage\tCommand\tActions\tDelayActions\tComponent_\n" +
			"s72\ts255\ti2\tI4\tL255\tS255\tS255\tS255\ts72\n" +
			"MsiServiceConfigFailureActions\tMsiServiceConfigFailureActions\n" +
			fmt.Sprintf("RestartOnFailure\toxbroker\t%d\t86400\t\t\t1[~]1[~]1\t5000[~]5000[~]5000\tBinary\n", eventInstallReinstall),
		"MsiLockPermissionsEx": "MsiLockPermissionsEx\tLockObject\tTable\tSDDL\tCondition\n" +
			"s72\ts72\ts32\ts0\tS255\n" +
			"MsiLockPermissionsEx\tMsiLockPermissionsEx\n" +
			"DataDirACL\tDATADIR\tCreateFolder\t" + DataDirSDDL + "\t\n" +
			"ConfigACL\tconfig.yaml\tFile\t" + DataDirSDDL + "\t\n",
	}
	args := []string{msi}
	for name, idt := range idts {
		path := filepath.Join(dir, name+".idt")
		if err := os.WriteFile(path, []byte(idt), 0o644); err != nil {
			return err
		}
		args = append(args, "-i", path)
	}
	for _, q := range []string{
		"INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES ('MsiConfigureServices', 'VersionNT >= 600', 5850)",
		fmt.Sprintf("UPDATE `Component` SET `Attributes` = %d WHERE `Component` = 'Config'", win64|permanent|neverOverwrite),
		"UPDATE `Component` SET `Condition` = 'START = \"1\"' WHERE `Component` = 'Start'",
		// Attributes is part of the Upgrade table's key: the row is replaced.
		"DELETE FROM `Upgrade` WHERE `ActionProperty` = 'WIX_UPGRADE_DETECTED'",
		fmt.Sprintf("INSERT INTO `Upgrade` (`UpgradeCode`, `VersionMax`, `Attributes`, `ActionProperty`) VALUES ('%s', '%s', %d, 'WIX_UPGRADE_DETECTED')",
			UpgradeCodes[arch], version, upgradeMigrate|maxInclusive),
		fmt.Sprintf("UPDATE `RegLocator` SET `Type` = %d WHERE `Signature_` = 'ConfigSearch'", regRaw64),
		"UPDATE `Property` SET `Value` = 'CONFIG;START;WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED' WHERE `Property` = 'SecureCustomProperties'",
	} {
		args = append(args, "-q", q)
	}
	if err := run(exec.CommandContext(ctx, "msibuild", args...)); err != nil {
		return err
	}
	if p := msiPlatforms[arch]; p != "x64" {
		return run(exec.CommandContext(ctx, "msibuild", msi, "-s", "OX Broker agent", "OX Security", p+";1033"))
	}
	return nil
}
