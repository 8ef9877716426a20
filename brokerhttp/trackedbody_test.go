package brokerhttp

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// failingReader gives its data, then fails with err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func TestTrackedBody(t *testing.T) {
	var none *TrackedBody
	if err := none.Err(); err != nil {
		t.Errorf("nil body: got %v, want no error", err)
	}

	whole := &TrackedBody{ReadCloser: io.NopCloser(strings.NewReader("0123456789"))}
	if b, err := io.ReadAll(whole); err != nil || string(b) != "0123456789" {
		t.Fatalf("got %q, %v", b, err)
	}
	if whole.Err() != nil || whole.BytesRead() != 10 {
		t.Errorf("a body read to its end: got error %v, %d bytes; want none, 10", whole.Err(), whole.BytesRead())
	}

	first, second := errors.New("cut"), errors.New("later")
	fr := &failingReader{r: strings.NewReader("abc"), err: first}
	broken := &TrackedBody{ReadCloser: io.NopCloser(fr)}
	if _, err := io.ReadAll(broken); !errors.Is(err, first) {
		t.Fatalf("got %v, want %v", err, first)
	}
	fr.err = second
	broken.Read(make([]byte, 1))
	if !errors.Is(broken.Err(), first) || broken.BytesRead() != 3 {
		t.Errorf("a broken body: got error %v, %d bytes; want the first error, 3", broken.Err(), broken.BytesRead())
	}
}
