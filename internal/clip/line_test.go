package clip

import "testing"

// TestLine: text from a peer stays on one line, without the control
// characters that would start another or steer a terminal.
func TestLine(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"issuer \"CN=evil\nready\"", 64, "issuer \"CN=evil ready\""},
		{"\x1b[2Jcleared\r\x7f\u0085", 64, " [2Jcleared   "},
		{"Jira's café", 64, "Jira's café"},
		{"abcd\nef", 4, "abcd…"},
	} {
		if got := Line(tc.s, tc.n); got != tc.want {
			t.Errorf("Line(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
