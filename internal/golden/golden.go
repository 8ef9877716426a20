// Package golden compares what a test renders with a file under testdata/
// that documents it for reviewers, and rewrites that file when the test
// runs with -update. The tests of config, the agent's service units and
// the frp benchmark configs share it, so that -update means the same
// everywhere.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ instead of comparing with them")

// Check compares got with the file at path. With -update it writes got
// there instead (creating the folder), and the diff is for the author to
// read before committing.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run the test with -update, then read the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
