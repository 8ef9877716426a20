package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPool(t *testing.T) {
	body := strings.Repeat("x", 4000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" {
			w.WriteHeader(400)
			return
		}
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte(body[:100]))
			w.(http.Flusher).Flush()
			w.Write([]byte(body))
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, body)
		default:
			io.WriteString(w, body)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, path := range []string{"/length", "/chunked", "/close"} {
		t.Run(path, func(t *testing.T) {
			p := NewPool(host, 4)
			defer p.Close()
			res, err := p.Run(Run{Request: Request(host, path, map[string]string{"X-Test": "yes"}), Conns: 4, Max: 200, For: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 200 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 {
				t.Errorf("got %+v, want 200 requests, no errors, 0 < p50 <= p99", res)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		p := NewPool(host, 1)
		defer p.Close()
		if _, err := p.Run(Run{Request: Request(host, "/", nil), Conns: 1, Max: 10, For: 10 * time.Second}); err == nil {
			t.Error("a run of 400s: got no error")
		}
	})
}

// TestHostHeader: a "Host" among the headers is the request's Host, in
// the pool's prepared request and in the bulk transfers, sent once.
func TestHostHeader(t *testing.T) {
	hosts := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	h := map[string]string{"Host": "jira.example:8080", "X-Test": "yes"}

	req := string(Request(addr, "/", h))
	if n := strings.Count(req, "Host:"); n != 1 || !strings.Contains(req, "\r\nHost: jira.example:8080\r\n") {
		t.Errorf("Request: got %d Host lines in %q, want one naming jira.example:8080", n, req)
	}
	p := NewPool(addr, 1)
	defer p.Close()
	if _, err := p.Run(Run{Request: []byte(req), Conns: 1, Max: 1, For: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	c := NewBulkClient()
	defer c.CloseIdleConnections()
	if _, err := Download(context.Background(), c, srv.URL, h, 2); err != nil {
		t.Fatal(err)
	}
	u, err := NewUpload(10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Send(context.Background(), c, srv.URL, h); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"pool", "download", "upload"} {
		if got := <-hosts; got != "jira.example:8080" {
			t.Errorf("%s: the server saw Host %q, want jira.example:8080", what, got)
		}
	}
}

func TestBulk(t *testing.T) {
	const size = 3<<20 + 5
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			io.CopyN(w, strings.NewReader(strings.Repeat("y", size)), size)
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		part, err := mr.NextPart()
		if err != nil || part.FormName() != "file" {
			http.Error(w, "no file part", 400)
			return
		}
		if n, _ := io.Copy(io.Discard, part); n != size {
			http.Error(w, "wrong size", 400)
		}
	}))
	defer srv.Close()
	c := NewBulkClient()
	defer c.CloseIdleConnections()
	ctx := context.Background()
	if _, err := Download(ctx, c, srv.URL, nil, size); err != nil {
		t.Fatal(err)
	}
	u, err := NewUpload(size)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := u.Send(ctx, c, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Bytes != size || tr.MBps() <= 0 {
		t.Errorf("upload: got %+v", tr)
	}
}
