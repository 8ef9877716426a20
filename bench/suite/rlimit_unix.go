//go:build unix

package suite

import (
	"fmt"
	"syscall"
)

// fitFileLimit returns how many simulated agents the run can hold, want
// or fewer, and raises this process's soft limit on open files for them.
// Each agent holds one socket here and its session one in the gateway,
// whose limit is the same hard one (it inherits it, and Go programs
// raise their soft limit to the hard one at start); both need fdReserve
// more for everything else. When the hard limit is too low for want, n
// is the largest count that fits and why says so.
func fitFileLimit(want int) (n int, why string, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, "", err
	}
	n = want
	if l.Max < uint64(want+fdReserve) {
		n = int(l.Max) - fdReserve
		if n < 1 {
			return 0, "", fmt.Errorf("open files: the hard limit is %d, the benchmark needs more than %d: %w", l.Max, fdReserve, errFileLimit)
		}
		why = fmt.Sprintf("%d simulated agents, not %d: the hard limit on open files is %d (ulimit -Hn), "+
			"and the driver and the gateway each hold one descriptor per agent and up to %d others", n, want, l.Max, fdReserve)
	}
	if need := uint64(n + fdReserve); l.Cur < need {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, "", fmt.Errorf("open files: raise the soft limit to %d: %v: %w", l.Max, err, errFileLimit)
		}
	}
	return n, why, nil
}
