package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	ready := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			http.Error(w, "not ready: no tunnel is up", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	defer srv.Close()
	if err := check(srv.URL + "/readyz"); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "no tunnel") {
		t.Errorf("not ready: got %v, want the 503 and its reason", err)
	}
	ready = true
	if err := check(srv.URL + "/readyz"); err != nil {
		t.Errorf("ready: got %v, want nil", err)
	}
	srv.Close()
	if err := check(srv.URL + "/readyz"); err == nil {
		t.Error("nothing listening: got nil, want an error")
	}
}
