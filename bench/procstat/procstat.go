// Package procstat reads a process's CPU time and memory from /proc
// (Linux only), as the benchmark reports them.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat. Linux
// fixes USER_HZ at 100 for user space whatever the kernel's HZ.
const clockTick = 10 * time.Millisecond

// CPU returns the user and system CPU time pid has used so far
// (utime+stime of /proc/<pid>/stat), with a resolution of 10 ms.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// Memory is what /proc/<pid>/status says of a process's resident memory.
type Memory struct {
	RSS  int64 // VmRSS: resident now, bytes
	Peak int64 // VmHWM: the most ever resident, bytes
}

// Mem returns pid's resident and peak resident memory.
func Mem(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS, err = kiB(v)
		case "VmHWM":
			m.Peak, err = kiB(v)
		}
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	if m.RSS == 0 || m.Peak == 0 {
		return Memory{}, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return m, nil
}

// kiB parses "   1234 kB" into bytes.
func kiB(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n << 10, err
}

// Syscalls is what /proc/<pid>/io counts of a process's I/O system calls.
type Syscalls struct {
	Reads  int64 // syscr: read-like calls (read, recvmsg, ...)
	Writes int64 // syscw: write-like calls (write, sendmsg, ...)
}

// IO returns pid's counts of read and write system calls so far.
func IO(pid int) (Syscalls, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return Syscalls{}, err
	}
	var s Syscalls
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			s.Reads = n
		case "syscw":
			s.Writes = n
		}
	}
	return s, nil
}
