package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeT records what Check reports, so that the test can see a mismatch
// fail without failing itself.
type fakeT struct {
	testing.TB
	errors []string
	fatal  bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errors = append(f.errors, format)
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = true
	panic(f)
}
func (f *fakeT) Fatal(args ...any) { f.Fatalf("") }

func check(path string, got []byte) (f *fakeT) {
	f = &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
	}()
	Check(f, path, got)
	return f
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "testdata", "x.golden")
	if f := check(path, []byte("a")); !f.fatal {
		t.Error("a missing golden file passed")
	}

	*update = true
	f := check(path, []byte("first\n"))
	*update = false
	if f.fatal || len(f.errors) > 0 {
		t.Fatalf("-update failed: %v", f.errors)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "first\n" {
		t.Fatalf("-update wrote %q, %v", b, err)
	}

	if f := check(path, []byte("first\n")); f.fatal || len(f.errors) > 0 {
		t.Errorf("the same text failed: %v", f.errors)
	}
	if f := check(path, []byte("second\n")); len(f.errors) != 1 || !strings.Contains(f.errors[0], "-update") {
		t.Errorf("a different text: got %v, want one error that names -update", f.errors)
	}
}
