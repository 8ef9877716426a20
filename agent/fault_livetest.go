//go:build livetest

package agent

// HangForLiveTest takes the agent's lock and never gives it back, as a
// deadlock between two of its goroutines would: sessions can no longer
// start or end, reloads and Status block. The live systemd test (make
// live-test) uses it to show that the watchdog restarts a hung agent.
// It exists only in binaries built with -tags livetest, never in a release.
func HangForLiveTest(a *Agent) { a.mu.Lock() }
