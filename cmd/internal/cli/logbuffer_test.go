package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// TestLogBufferBatchesAndLosesNothing writes records to a file through
// the buffer: nothing is lost on Close, records stay whole and in order,
// the flusher writes them out without Close, and writes after Close
// still arrive.
func TestLogBufferBatchesAndLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := NewLogBuffer(f)
	if _, ok := b.(*LogBuffer); !ok {
		t.Fatalf("a file is not buffered: got %T", b)
	}
	var want strings.Builder
	for i := range 5000 { // about 3 buffers' worth
		line := strings.Repeat("x", i%97) + " record\n"
		want.WriteString(line)
		b.Write([]byte(line))
	}
	big := strings.Repeat("y", logBufferSize+1) + "\n"
	want.WriteString(big)
	b.Write([]byte(big))

	// Without Close, the flusher writes everything within a few periods.
	testwait.For(t, 5*time.Second, fmt.Sprintf("all %d bytes written", want.Len()), func() bool {
		got, _ := os.ReadFile(path)
		return len(got) == want.Len()
	})
	b.Write([]byte("last before close\n"))
	b.Close()
	b.Write([]byte("after close\n"))
	want.WriteString("last before close\nafter close\n")
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, []byte(want.String())) {
		t.Fatalf("file differs from what was written: %d bytes, want %d", len(got), want.Len())
	}
}

func TestLogBufferLeavesOtherWriters(t *testing.T) {
	var buf bytes.Buffer
	w := NewLogBuffer(&buf)
	w.Write([]byte("now\n"))
	if buf.String() != "now\n" {
		t.Fatalf("a non-file writer was buffered: %q", buf.String())
	}
	w.Close()
}
