package proxy

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
)

// callLog is an Observer that keeps every Call it is told.
type callLog struct {
	mu    sync.Mutex // guards calls
	calls []Call
}

func (c *callLog) ObserveRequest(string, int, brokerhttp.Code, time.Duration) {}

func (c *callLog) ObserveCall(call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

func (c *callLog) all() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// TestCallObserver: a CallObserver is told each call by its operation and
// template, with the reason of a refusal, and never the path or query the
// caller sent, which can hold issue keys and JQL.
func TestCallObserver(t *testing.T) {
	up := newUpstream(t, false, nil)
	obs := &callLog{}
	f := newFront(t, testSite(up.URL), Options{Observer: obs})
	const secretKey, secretJQL = "SECRETKEY-4242", "project%3DSECRETPROJ"
	hdr := map[string][]string{brokerhttp.HeaderRequestID: {"req-1"}}
	f.do(t, "GET", "/rest/api/3/issue/"+secretKey+"?jql="+secretJQL, nil, hdr)
	f.do(t, "DELETE", "/rest/api/3/issue/"+secretKey, nil, nil)           // allowed (write:jira-work)
	f.do(t, "POST", "/rest/api/3/user?x="+secretJQL, nil, nil)            // needs a scope not granted
	f.do(t, "GET", "/rest/api/3/nosuch/"+secretKey, nil, nil)             // unknown path
	f.do(t, "GET", "/rest/api/3/issue/"+secretKey+"/../myself", nil, nil) // bad request

	calls := obs.all()
	if len(calls) != 5 {
		t.Fatalf("got %d calls, want 5: %+v", len(calls), calls)
	}
	for _, c := range calls {
		if s := strings.Join([]string{c.Method, c.Operation, c.Template, c.Reason, c.RequestID}, " "); strings.Contains(s, "SECRET") {
			t.Errorf("call %+v holds the caller's path or query", c)
		}
		if c.Site != "jira-test" || c.Start.IsZero() || c.Duration <= 0 {
			t.Errorf("call %+v: want site, start and duration", c)
		}
	}
	ok := calls[0]
	if ok.Status != 200 || ok.Operation != "getIssue" || ok.Template != "/rest/api/3/issue/{issueIdOrKey}" ||
		ok.RequestID != "req-1" || ok.Code != "" || ok.Reason != "" || ok.BytesOut == 0 {
		t.Errorf("allowed call: got %+v", ok)
	}
	scope := calls[2]
	if scope.Status != 403 || scope.Code != brokerhttp.PathNotAllowed || scope.Operation != "createUser" ||
		!strings.HasPrefix(scope.Reason, "allowlist: needs a scope not granted (needs ") {
		t.Errorf("refused call: got %+v", scope)
	}
	unknown := calls[3]
	if unknown.Code != brokerhttp.PathNotAllowed || unknown.Template != "" || unknown.Reason != "allowlist: unknown path" {
		t.Errorf("unknown path: got %+v", unknown)
	}
	bad := calls[4]
	if bad.Code != brokerhttp.BadRequest || !strings.Contains(bad.Reason, `".." segment`) {
		t.Errorf("bad request: got %+v", bad)
	}
}
