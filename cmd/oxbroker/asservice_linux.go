package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// asServiceCmd is the command that runs this executable with args as the
// user username, as the service would: its uid, its group and its other
// groups, in /. Only root may switch users.
func asServiceCmd(ctx context.Context, username string, args []string) (*exec.Cmd, error) {
	if username == "" {
		return nil, errors.New("--as-service: the service runs as root here (there is no user " + serviceAccount + "), so check as root is the check as the service")
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("--as-service switches to user %s: run it as root (or run: runuser -u %s -- oxbroker check ...)", username, username)
	}
	u, err := user.Lookup(username)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q", username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q", username, u.Gid)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	cmd.Dir = "/"
	return cmd, nil
}
