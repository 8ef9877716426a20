//go:build unix

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// account is a user as file modes judge it: its ids and groups.
type account struct {
	name, group string // the user's name and its primary group's
	uid, gid    uint32
	groups      []uint32 // every group it is in, the primary one too
}

// lookupAccount returns the account of the user name.
func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, err
	}
	return accountOf(u)
}

func accountOf(u *user.User) (account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("user %s: uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("user %s: gid %q", u.Username, u.Gid)
	}
	a := account{name: u.Username, group: u.Gid, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}}
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		a.group = g.Name
	}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(a.groups, uint32(n)) {
				a.groups = append(a.groups, uint32(n))
			}
		}
	}
	return a, nil
}

// thisProcess is the account this process runs as.
func thisProcess() account {
	a := account{name: strconv.Itoa(os.Getuid()), group: strconv.Itoa(os.Getgid()), uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if u, err := user.LookupId(a.name); err == nil {
		a.name = u.Username
	}
	if g, err := user.LookupGroupId(a.group); err == nil {
		a.group = g.Name
	}
	a.groups = []uint32{a.gid}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			if !slices.Contains(a.groups, uint32(g)) {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	return a
}

// UnreadableBy says why the user username could not read the file path,
// with the command that lets it, or "" when it could (as far as the mode
// bits tell: ACLs and security modules are not read). A file that does
// not exist is "" too: reading it reports that.
func UnreadableBy(username, path string) (string, error) {
	a, err := lookupAccount(username)
	if err != nil {
		return "", err
	}
	return a.unreadable(path), nil
}

// unreadable is UnreadableBy for a: what stops a from reading path — a
// folder on the way it may not enter, or the file — and the fix.
func (a account) unreadable(path string) string {
	if a.uid == 0 {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	dir := "/"
	for _, part := range strings.Split(strings.TrimPrefix(filepath.Dir(abs), "/"), "/") {
		if part != "" {
			dir = filepath.Join(dir, part)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return ""
		}
		if !a.may(fi, 0o1) {
			return fmt.Sprintf("user %s may not enter folder %s (%s), so it cannot read %s; run: %s",
				a.name, dir, owned(fi), path, a.grant(dir, fi, "x"))
		}
	}
	fi, err := os.Stat(abs)
	if err != nil || a.may(fi, 0o4) {
		return ""
	}
	return fmt.Sprintf("user %s cannot read %s (%s); run: %s", a.name, path, owned(fi), a.grant(path, fi, "r"))
}

// may reports whether a has the permission bit (4 read, 1 execute) on
// fi by its mode: the owner's bits, else the group's, else the others'.
func (a account) may(fi fs.FileInfo, bit fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == a.uid:
		return perm&(bit<<6) != 0
	case slices.Contains(a.groups, st.Gid):
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

// grant is the command that gives a permission p ("r" or "x") on path:
// through the owner's or a group's bits a already has, else by giving
// the file to a's group.
func (a account) grant(path string, fi fs.FileInfo, p string) string {
	q := shellQuote(path)
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case st != nil && st.Uid == a.uid:
		return "chmod u+" + p + " " + q
	case st != nil && slices.Contains(a.groups, st.Gid):
		return "chmod g+" + p + " " + q
	}
	return "chgrp " + shellQuote(a.group) + " " + q + " && chmod g+" + p + " " + q
}

// owned describes fi's owner, group and mode: "root:root, mode 0600".
func owned(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	return fmt.Sprintf("%s:%s, mode %04o", userName(st.Uid), groupName(st.Gid), fi.Mode().Perm())
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// deniedError words a permission error of opening name in this process:
// who it runs as, what stops it, and the command that fixes it.
func deniedError(name string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	a := thisProcess()
	if why := a.unreadable(name); why != "" {
		return fmt.Errorf("this process runs as %s: %s (as root)", a.name, why)
	}
	return fmt.Errorf("this process runs as %s and may not read %s: %w", a.name, name, err)
}
