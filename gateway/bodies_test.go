package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/rawhttp"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// answerBound bounds the wait for an answer that must come at once: a
// failing test waits this long, a passing one not at all.
const answerBound = 10 * time.Second

// refusingAgent answers like the agent's proxy refusing a request before
// reading its body (413 for a Content-Length over max_body, 403 for a path
// outside the allowlist), behind the agent's own body guard.
func refusingAgent() http.Handler {
	return brokerhttp.GuardBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 1<<20 {
			brokerhttp.WriteError(w, brokerhttp.TooLarge, "request body is larger than this site's max_body", "")
			return
		}
		brokerhttp.WriteError(w, brokerhttp.PathNotAllowed, "POST /rest/api/3/x is not allowed", "")
	}), 0)
}

// TestEarlyRefusalDelivered (issue 12, finding 5): a connector that
// declares a body and waits for the answer before sending it gets a
// refusal made before the body at once, and the connection is closed
// rather than drained. Before the fix the gateway's server first read
// what was left of the body, so the answer waited for the connector.
func TestEarlyRefusalDelivered(t *testing.T) {
	tg := startGateway(t)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), refusingAgent())
	post := func(path, token, length string) string {
		h := "POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: " + length + "\r\n"
		if token != "" {
			h += "Authorization: Bearer " + token + "\r\n"
		}
		return h + "\r\n" // and no body
	}
	tests := []struct {
		name string
		raw  string
		code brokerhttp.Code
	}{
		{"401 by the gateway", post("/b/acme/jira/rest/api/3/issue", "", "1000"), brokerhttp.Unauthorized},
		{"404 unknown broker", post("/b/nosuch/jira/rest/api/3/issue", tg.acmeConnector, "1000"), brokerhttp.UnknownBroker},
		{"403 by the agent", post("/b/acme/jira/rest/api/3/x", tg.acmeConnector, "1000"), brokerhttp.PathNotAllowed},
		{"413 by the agent", post("/b/acme/jira/rest/api/3/issue", tg.acmeConnector, "60000000"), brokerhttp.TooLarge},
		{"401 by the gateway, 60 MB declared", post("/b/acme/jira/rest/api/3/issue", "", "60000000"), brokerhttp.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := rawhttp.Dial(tg.api, time.Now().Add(answerBound))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, b, _, err := c.Send(tt.raw)
			if err != nil {
				t.Fatalf("no answer while the body is unsent: %v", err)
			}
			brokerError(t, resp, b, tt.code.Status(), tt.code)
			if err := c.Closed(); err != nil {
				t.Errorf("%v: the gateway would drain the body", err)
			}
		})
	}
	// The gateway serves on.
	if resp, b := tg.call(t, "GET", "/v1/brokers/acme", tg.acmeConnector, nil, ""); resp.StatusCode != 200 {
		t.Errorf("after the refusals: %d %s", resp.StatusCode, b)
	}
}

// TestStatusSkips1xx (issue 12, finding 6): a POST with "Expect:
// 100-continue" is answered 100 by the agent's server before its real
// answer; the gateway logs and counts the real one.
func TestStatusSkips1xx(t *testing.T) {
	tg := startGateway(t)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // the agent's server sends 100 Continue here
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"10001"}`)
	}))
	c, err := rawhttp.Dial(tg.api, time.Now().Add(answerBound))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, b, interim, err := c.Send("POST /b/acme/jira/rest/api/3/issue HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tg.acmeConnector +
		"\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || len(interim) == 0 {
		t.Fatalf("got %v then %d %s, want 100 Continue then 201", interim, resp.StatusCode, b)
	}
	id := resp.Header.Get(brokerhttp.HeaderRequestID)
	var line string
	testwait.For(t, 5*time.Second, "the request's log line", func() bool {
		for l := range strings.SplitSeq(tg.logs.String(), "\n") {
			if strings.Contains(l, "msg=request ") && strings.Contains(l, "request_id="+id) {
				line = l
				return true
			}
		}
		return false
	})
	if !strings.Contains(line, " status=201 ") {
		t.Errorf("log line: got %q, want status=201", line)
	}
}
