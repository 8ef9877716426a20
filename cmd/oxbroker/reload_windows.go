package main

import "os"

// Windows has no SIGHUP: a change to the config file triggers the reload.
func reloadSignals() []os.Signal { return nil }
