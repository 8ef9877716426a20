// Package clip shortens strings that come from outside (a broker id, a
// site name, a request target) before they go into a log line or a
// message, so that a hostile caller cannot make either as long as it
// likes.
package clip

// String returns s when it is at most n bytes long, else its first n
// bytes followed by "…".
func String(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
