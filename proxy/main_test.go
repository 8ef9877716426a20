package proxy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/httprecord"
	"github.com/oxsecurity/oxbroker/internal/rawhttp"
	"github.com/oxsecurity/oxbroker/internal/syncbuf"
)

// testToken is the Jira token of every test site. No log line and no
// response to the caller may ever contain it, in clear or in a Basic
// header.
const testToken = "jira-tok-3f9a1c7e-MUST-NOT-LEAK"

// connectorToken is what the connector sends; it must not reach Jira.
const connectorToken = "connector-tok-0b1d"

// logs collects the log output of every Proxy of the run, at debug level,
// for TestMain's check that no token was logged.
var logs syncBuffer

// frontsStarted counts the proxies that tests served.
var frontsStarted atomic.Int32

var testLogger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkNoSecret("the log of the whole run", logs.String()); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
		if frontsStarted.Load() > 0 && !strings.Contains(logs.String(), `msg=request`) {
			fmt.Fprintln(os.Stderr, "FAIL: the log of the run has no audit line; is the token check looking at the right log?")
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// secretForms are the forms in which testToken would show.
var secretForms = []string{
	testToken,
	base64.StdEncoding.EncodeToString([]byte("me@acme.com:" + testToken)),
}

func checkNoSecret(where, s string) error {
	for _, f := range secretForms {
		if strings.Contains(s, f) {
			return fmt.Errorf("%s contains the Jira token", where)
		}
	}
	return nil
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = syncbuf.Buffer

// upstream is a Jira stand-in that records every request that reaches it.
type upstream struct {
	*httptest.Server
	*httprecord.Recorder
}

// newUpstream starts a recording upstream; h answers after the request
// and its body were recorded (nil answers 200 {"ok":true}).
func newUpstream(t testing.TB, tlsServer bool, h http.HandlerFunc) *upstream {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}
	rec := &httprecord.Recorder{Next: h}
	u := &upstream{Server: httptest.NewUnstartedServer(rec), Recorder: rec}
	// Handshakes that the proxy refuses on purpose are not news.
	u.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

// testSite returns a bearer-token site for baseURL.
func testSite(baseURL string) config.Site {
	return config.Site{
		Name:          "jira-test",
		Type:          "jira",
		URL:           baseURL,
		Auth:          config.Auth{Type: config.AuthBearer, Token: testToken},
		Timeout:       5 * time.Second,
		MaxConcurrent: 4,
		MaxBody:       1 << 20,
		Allow:         config.Allow{Scopes: config.DefaultScopes()},
	}
}

// front is a Proxy behind a real http.Server on 127.0.0.1, the way the
// agent serves it on tunnel streams.
type front struct {
	p      *Proxy
	addr   string
	client *http.Client
}

func newFront(t testing.TB, site config.Site, opts Options) *front {
	t.Helper()
	return newFrontStall(t, site, opts, 0)
}

// newFrontStall is newFront whose server cuts request bodies that send
// nothing for stall (brokerhttp.DefaultBodyStall when zero), as the
// agent's stream server does.
func newFrontStall(t testing.TB, site config.Site, opts Options, stall time.Duration) *front {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger
	}
	p, err := New(site, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	frontsStarted.Add(1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// conns lets the cleanup wait until every connection's goroutine has
	// ended: after some refusals Go's server lingers up to 500ms before
	// closing, which Close does not wait for.
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler:           brokerhttp.GuardBodies(p, stall),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				conns.Done()
			}
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	tr := &http.Transport{DisableCompression: true}
	f := &front{p: p, addr: ln.Addr().String(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-done
		conns.Wait()
		p.Close()
	})
	return f
}

// do sends a request through the front with Go's client. The connector's
// own Authorization and the request id are set as the gateway would.
func (f *front) do(t testing.TB, method, target string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+f.addr+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+connectorToken)
	req.Header.Set(brokerhttp.HeaderRequestID, "req-"+t.Name())
	req.Header.Set(brokerhttp.HeaderSite, "jira-test")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	checkResponseHasNoSecret(t, resp, b)
	return resp, b
}

// raw writes request bytes as they are over a new TCP connection and
// reads one response.
func (f *front) raw(t testing.TB, request string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := rawhttp.Do(f.addr, request, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("response to %q: %v", request, err)
	}
	checkResponseHasNoSecret(t, resp, b)
	return resp, b
}

func checkResponseHasNoSecret(t testing.TB, resp *http.Response, body []byte) {
	t.Helper()
	var hdr strings.Builder
	resp.Header.Write(&hdr)
	resp.Trailer.Write(&hdr)
	if err := checkNoSecret("response", hdr.String()+string(body)); err != nil {
		t.Error(err)
	}
}

// wantBrokerError checks that a response is the broker's error code.
func wantBrokerError(t testing.TB, resp *http.Response, body []byte, code brokerhttp.Code) brokerhttp.Detail {
	t.Helper()
	if resp.StatusCode != code.Status() {
		t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, code.Status(), body)
	}
	if got := resp.Header.Get(brokerhttp.HeaderError); got != string(code) {
		t.Errorf("%s: got %q, want %q (body %s)", brokerhttp.HeaderError, got, code, body)
	}
	var b brokerhttp.Body
	if err := json.Unmarshal(body, &b); err != nil {
		t.Errorf("error body %q: %v", body, err)
	}
	if b.Error.Code != code {
		t.Errorf("body code: got %q, want %q", b.Error.Code, code)
	}
	return b.Error
}
