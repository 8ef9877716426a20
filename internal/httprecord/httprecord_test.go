package httprecord

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRecorder: a request is kept with its body read to the end, and Next
// answers it; a request whose body breaks is kept with the error and
// answered 500 without Next.
func TestRecorder(t *testing.T) {
	var nextSaw []string
	rec := &Recorder{Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		nextSaw = append(nextSaw, r.RequestURI+" "+string(b))
		io.WriteString(w, "answered")
	})}

	w := httptest.NewRecorder()
	rec.ServeHTTP(w, httptest.NewRequest("POST", "/a?q=1", strings.NewReader("hello")))
	if w.Code != 200 || w.Body.String() != "answered" {
		t.Errorf("good body: got %d %q, want Next's answer", w.Code, w.Body)
	}
	got := rec.Last(t)
	if got.Method != "POST" || got.RequestURI != "/a?q=1" || string(got.Body) != "hello" || got.ContentLength != 5 || got.BodyErr != nil {
		t.Errorf("kept %+v, want POST /a?q=1 with the 5-byte body hello", got)
	}

	broken := errors.New("cut")
	w = httptest.NewRecorder()
	rec.ServeHTTP(w, httptest.NewRequest("POST", "/b", io.MultiReader(strings.NewReader("he"), errReader{broken})))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("broken body: got %d, want 500", w.Code)
	}
	if got := rec.Last(t); !errors.Is(got.BodyErr, broken) || string(got.Body) != "he" {
		t.Errorf("broken body: kept %q, %v; want he, cut", got.Body, got.BodyErr)
	}
	if rec.Begun() != 2 || rec.Count() != 2 || len(rec.All()) != 2 {
		t.Errorf("Begun %d, Count %d, All %d; want 2 each", rec.Begun(), rec.Count(), len(rec.All()))
	}
	if len(nextSaw) != 1 || nextSaw[0] != "/a?q=1 " {
		t.Errorf("Next saw %q, want the good request only, its body already read", nextSaw)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
