package main

import (
	"errors"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/oxsecurity/oxbroker/config"
)

// secrets are in %ProgramData%\OXBroker\secrets, sealed with DPAPI's
// machine key.
var secrets = secretStore{
	dir:       filepath.Join(filepath.Dir(config.DefaultAgentPath()), "secrets"),
	protect:   dpapiProtect,
	unprotect: dpapiUnprotect,
	mkdir:     mkdirAdminsOnly,
}

// secretsSDDL lets SYSTEM and Administrators in, nobody else, and does
// not inherit from the parent (as packaging.DataDirSDDL).
const secretsSDDL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

func blob(b []byte) *windows.DataBlob {
	if len(b) == 0 {
		return &windows.DataBlob{}
	}
	return &windows.DataBlob{Size: uint32(len(b)), Data: &b[0]}
}

// takeBlob copies what DPAPI returned and frees it.
func takeBlob(b *windows.DataBlob) []byte {
	defer windows.LocalFree(windows.Handle(unsafe.Pointer(b.Data)))
	return append([]byte(nil), unsafe.Slice(b.Data, b.Size)...)
}

// dpapiProtect seals data with the machine's DPAPI key: any process of
// this machine may open it, no other machine can; the folder's ACL keeps
// other users from the file.
func dpapiProtect(data, entropy []byte) ([]byte, error) {
	desc, err := windows.UTF16PtrFromString("OX Broker secret")
	if err != nil {
		return nil, err
	}
	var out windows.DataBlob
	if err := windows.CryptProtectData(blob(data), desc, blob(entropy), 0, nil,
		windows.CRYPTPROTECT_LOCAL_MACHINE|windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, err
	}
	return takeBlob(&out), nil
}

func dpapiUnprotect(sealed, entropy []byte) ([]byte, error) {
	var out windows.DataBlob
	if err := windows.CryptUnprotectData(blob(sealed), nil, blob(entropy), 0, nil, windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, err
	}
	return takeBlob(&out), nil
}

// mkdirAdminsOnly creates dir with secretsSDDL; an existing one keeps its ACL.
func mkdirAdminsOnly(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString(secretsSDDL)
	if err != nil {
		return err
	}
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return err
	}
	sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
	if err := windows.CreateDirectory(p, sa); err != nil && !errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		return err
	}
	return nil
}
