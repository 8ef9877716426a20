package admin

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "oxbroker_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	var ready atomic.Bool
	s, err := Listen("127.0.0.1:0", Handler(reg, func() (bool, string) { return ready.Load(), "no tunnel is up" }), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr().String()
	http.DefaultClient.CloseIdleConnections()
	defer http.DefaultClient.CloseIdleConnections()

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: got %d, want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "no tunnel is up") {
		t.Fatalf("/readyz while not ready: got %d %q, want 503 with the reason", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz when ready: got %d, want 200", code)
	}
	code, body := get(t, base+"/metrics")
	for _, want := range []string{"oxbroker_test_total 1", "go_goroutines", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics: got %d, missing %q", code, want)
		}
	}
}
