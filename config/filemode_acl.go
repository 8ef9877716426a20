package config

import "fmt"

// aceEntry is one access-allowed entry of a Windows file's DACL, reduced
// to what secretFileAccess judges: whom it names and what it allows.
type aceEntry struct {
	who  string // "Everyone", "Users", "Authenticated Users"; "" for anyone else
	mask uint32
}

// Windows access rights (winnt.h) that let a trustee read or change a file.
const (
	aclFileReadData   = 0x00000001
	aclFileWriteData  = 0x00000002
	aclFileAppendData = 0x00000004
	aclWriteDAC       = 0x00040000
	aclWriteOwner     = 0x00080000
	aclGenericAll     = 0x10000000
	aclGenericWrite   = 0x40000000
	aclGenericRead    = 0x80000000

	aclRead  = aclFileReadData | aclGenericRead | aclGenericAll
	aclWrite = aclFileWriteData | aclFileAppendData | aclWriteDAC | aclWriteOwner | aclGenericWrite | aclGenericAll
)

// aclVerdict judges a Windows file's DACL as secretFileAccess judges unix
// modes: a broad group that may change the file is a problem, one that may
// read it a warning. The fix is an icacls command that removes the broad
// groups, leaving Administrators and SYSTEM (the service runs as
// LocalSystem).
func aclVerdict(name string, entries []aceEntry) fileAccess {
	fix := fmt.Sprintf(`icacls "%s" /inheritance:r /grant:r Administrators:F SYSTEM:F`, name)
	for _, e := range entries {
		if e.who != "" && e.mask&aclWrite != 0 {
			return fileAccess{problem: fmt.Sprintf("%s may be changed by %s: anyone among them could replace the token; run: %s", name, e.who, fix)}
		}
	}
	for _, e := range entries {
		if e.who != "" && e.mask&aclRead != 0 {
			return fileAccess{advice: fmt.Sprintf("%s is readable by %s; run: %s", name, e.who, fix)}
		}
	}
	return fileAccess{}
}
