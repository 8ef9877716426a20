package connectortest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// TestCall: the token, header and body reach the server as given, the
// path unchanged; the answer comes back whole.
func TestCall(t *testing.T) {
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, gotBody = r, string(b)
		io.WriteString(w, "answer")
	}))
	defer srv.Close()
	resp, b, err := Call(context.Background(), srv.Client(), "POST", srv.URL+"/b/acme/jira/../x", "tok", http.Header{"X-Custom": {"kept"}}, `{"a":1}`)
	if err != nil || resp.StatusCode != 200 || string(b) != "answer" {
		t.Fatalf("got %v %q %v, want 200 answer", resp, b, err)
	}
	for k, want := range map[string]string{"Authorization": "Bearer tok", "X-Custom": "kept", "Content-Type": "application/json"} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s at the server: got %q, want %q", k, v, want)
		}
	}
	if got.RequestURI != "/b/acme/jira/../x" || gotBody != `{"a":1}` {
		t.Errorf("request at the server: %s %q, want the path as written and the body", got.RequestURI, gotBody)
	}
	if _, _, err := Call(context.Background(), srv.Client(), "GET", srv.URL, "", nil, ""); err != nil || got.Header.Get("Authorization") != "" {
		t.Errorf("without a token: err %v, Authorization %q; want none sent", err, got.Header.Get("Authorization"))
	}
	srv.Close()
	if _, _, err := Call(context.Background(), srv.Client(), "GET", srv.URL+"/y", "", nil, ""); !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "GET "+srv.URL+"/y") {
		t.Errorf("a call to a closed server: got %v, want connection refused, naming the call", err)
	}
}
