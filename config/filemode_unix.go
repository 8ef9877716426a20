//go:build unix

package config

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// secretFileAccess judges the mode bits: group or others may not write;
// others should not read; the group may read when it is the group the
// service runs as (the documented root:oxbroker 0640) or one of this
// process's own groups, and should not otherwise.
func secretFileAccess(name, serviceGroup string, fi os.FileInfo) fileAccess {
	perm := fi.Mode().Perm()
	mode := fmt.Sprintf("%04o", perm)
	if perm&0o022 != 0 {
		return fileAccess{problem: fmt.Sprintf(
			"%s is writable by its group or by others (mode %s): anyone among them could replace the token; run: chmod go-w %s",
			name, mode, shellQuote(name))}
	}
	if perm&0o004 != 0 {
		return fileAccess{advice: fmt.Sprintf(
			"%s is readable by every user of this machine (mode %s); run: chmod o-r %s (and chown root:%s %s so that the service can still read it)",
			name, mode, shellQuote(name), serviceGroup, shellQuote(name))}
	}
	if perm&0o040 != 0 {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !trustedGroup(st.Gid, serviceGroup) {
			group := strconv.FormatUint(uint64(st.Gid), 10)
			if g, err := user.LookupGroupId(group); err == nil {
				group = g.Name
			}
			return fileAccess{advice: fmt.Sprintf(
				"%s is readable by group %s (mode %s), which is not the service's group; run: chgrp %s %s (or chmod g-r %s)",
				name, group, mode, serviceGroup, shellQuote(name), shellQuote(name))}
		}
	}
	return fileAccess{}
}

// trustedGroup reports whether members of gid may read the service's
// secrets anyway: root's group, the service's group, or a group of this
// process (whoever runs the program by hand).
func trustedGroup(gid uint32, serviceGroup string) bool {
	if gid == 0 || int(gid) == os.Getgid() {
		return true
	}
	if groups, err := os.Getgroups(); err == nil && slices.Contains(groups, int(gid)) {
		return true
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	return err == nil && g.Name == serviceGroup
}
