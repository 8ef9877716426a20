package packaging

import "testing"

func TestUncommentBlock(t *testing.T) {
	in := "sites:\n  - name: a\n\n# Prose: here\n#  - name: b\n#    url: x   # why\n#    # not: this\nadmin:\n#  - name: c\n"
	want := "sites:\n  - name: a\n\n# Prose: here\n  - name: b\n    url: x   # why\n    # not: this\nadmin:\n#  - name: c\n"
	if got := string(UncommentBlock([]byte(in), "  - name: b")); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
