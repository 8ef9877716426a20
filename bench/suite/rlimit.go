package suite

import (
	"errors"
	"fmt"
)

// fdReserve is how many descriptors a process of the run holds besides
// the simulated agents' sockets, with room to spare: the load
// generator's connections, the processes' logs, listeners.
const fdReserve = 1024

// errFileLimit explains how to give the benchmark enough descriptors.
var errFileLimit = errors.New("raise the limit with `ulimit -n` (as root: also the hard limit, or LimitNOFILE for a service)")

// fitSessions returns how many simulated agents fit under hard, the
// limit on open files: want, or the largest count that fits, with why.
// Each agent holds one socket in the driver and its session one in the
// gateway, whose limit is the same hard one (it inherits it, and Go
// programs raise their soft limit to the hard one at start); both need
// fdReserve more for everything else.
func fitSessions(want int, hard uint64) (n int, why string, err error) {
	if hard >= uint64(want+fdReserve) {
		return want, "", nil
	}
	if hard <= fdReserve {
		return 0, "", fmt.Errorf("open files: the hard limit is %d, the benchmark needs more than %d: %w", hard, fdReserve, errFileLimit)
	}
	n = int(hard) - fdReserve
	return n, fmt.Sprintf("%d simulated agents, not %d: the hard limit on open files is %d (ulimit -Hn), "+
		"and the driver and the gateway each hold one descriptor per agent and up to %d others", n, want, hard, fdReserve), nil
}
