package config

import (
	"strings"
	"testing"
)

// TestACLVerdict judges Windows DACLs off Windows: a broad group that may
// change the file is refused, one that may read it is warned about, and
// entries for particular accounts (Administrators, SYSTEM, the service's
// account) are not judged.
func TestACLVerdict(t *testing.T) {
	const name = `C:\ProgramData\OXBroker\jira.token`
	tests := []struct {
		name              string
		entries           []aceEntry
		wantProb, wantAdv string
	}{
		{"admins and system only", []aceEntry{{"", aclGenericAll}, {"", aclGenericAll}}, "", ""},
		{"users read", []aceEntry{{"", aclGenericAll}, {"Users", aclGenericRead}}, "", "readable by Users"},
		{"everyone read data", []aceEntry{{"Everyone", aclFileReadData}}, "", "readable by Everyone"},
		{"authenticated users modify", []aceEntry{{"Authenticated Users", aclFileWriteData | aclFileReadData}}, "may be changed by Authenticated Users", ""},
		{"users full control", []aceEntry{{"Users", aclGenericAll}}, "may be changed by Users", ""},
		{"everyone write dac", []aceEntry{{"Everyone", aclWriteDAC}}, "may be changed by Everyone", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := aclVerdict(name, tt.entries)
			if (tt.wantProb == "") != (got.problem == "") || !strings.Contains(got.problem, tt.wantProb) {
				t.Errorf("problem: got %q, want %q", got.problem, tt.wantProb)
			}
			if (tt.wantAdv == "") != (got.advice == "") || !strings.Contains(got.advice, tt.wantAdv) {
				t.Errorf("advice: got %q, want %q", got.advice, tt.wantAdv)
			}
			if s := got.problem + got.advice; s != "" && !strings.Contains(s, `icacls "`+name+`" /inheritance:r`) {
				t.Errorf("no icacls fix in %q", s)
			}
		})
	}
}
