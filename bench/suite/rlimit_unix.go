//go:build unix

package suite

import (
	"fmt"
	"syscall"
)

// fitFileLimit returns how many simulated agents the run can hold, want
// or fewer (fitSessions), and raises this process's soft limit on open
// files for them.
func fitFileLimit(want int) (n int, why string, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, "", err
	}
	if n, why, err = fitSessions(want, l.Max); err != nil {
		return 0, "", err
	}
	if need := uint64(n + fdReserve); l.Cur < need {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, "", fmt.Errorf("open files: raise the soft limit to %d: %v: %w", l.Max, err, errFileLimit)
		}
	}
	return n, why, nil
}
