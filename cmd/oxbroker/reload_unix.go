//go:build !windows

package main

import (
	"os"
	"syscall"
)

func reloadSignals() []os.Signal { return []os.Signal{syscall.SIGHUP} }
