//go:build unix

package suite

import (
	"fmt"
	"syscall"
)

// raiseFileLimit makes sure this process may hold need descriptors (the
// simulated agents hold one socket each), raising the soft limit up to
// the hard one. The processes it starts raise their own: Go programs lift
// their soft limit to the hard one at start.
func raiseFileLimit(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= uint64(need) {
		return nil
	}
	if l.Max < uint64(need) {
		return fmt.Errorf("open files: the hard limit is %d, the benchmark needs %d: %w", l.Max, need, errFileLimit)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("open files: raise the soft limit to %d: %v: %w", l.Max, err, errFileLimit)
	}
	return nil
}
