//go:build windows

package config

import (
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// broadTrustees are the well-known groups that stand for every user of
// the machine (or of the domain).
var broadTrustees = []struct {
	sid  windows.WELL_KNOWN_SID_TYPE
	name string
}{
	{windows.WinWorldSid, "Everyone"},
	{windows.WinBuiltinUsersSid, "Users"},
	{windows.WinAuthenticatedUserSid, "Authenticated Users"},
}

// secretFileAccess reads the file's DACL and judges it with aclVerdict. A
// DACL that cannot be read is not judged: the read of the token itself
// reports a file the service cannot open.
func secretFileAccess(name, _ string, _ os.FileInfo) fileAccess {
	sd, err := windows.GetNamedSecurityInfo(name, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fileAccess{}
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fileAccess{}
	}
	if dacl == nil { // a NULL DACL grants everyone everything
		return aclVerdict(name, []aceEntry{{who: "Everyone", mask: aclGenericAll}})
	}
	var entries []aceEntry
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil || ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		e := aceEntry{mask: uint32(ace.Mask)}
		for _, t := range broadTrustees {
			if sid.IsWellKnown(t.sid) {
				e.who = t.name
				break
			}
		}
		entries = append(entries, e)
	}
	return aclVerdict(name, entries)
}
