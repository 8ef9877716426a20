//go:build !unix

package suite

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE; the
// benchmark runs on Linux (it reads /proc) and fails there first.
func raiseFileLimit(int) error { return nil }
