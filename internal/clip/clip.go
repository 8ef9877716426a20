// Package clip shortens strings that come from outside (a broker id, a
// site name, a request target) before they go into a log line or a
// message, so that a hostile caller cannot make either as long as it
// likes.
package clip

import "strings"

// String returns s when it is at most n bytes long, else its first n
// bytes followed by "…".
func String(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Line is String of s made one line: each control character (a newline,
// an escape) becomes a space, so that text a peer chose (a certificate's
// names, Jira's error message) can neither start a line of its own in a
// line-based answer such as /readyz nor steer the terminal that prints it.
func Line(s string, n int) string {
	return String(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s), n)
}
