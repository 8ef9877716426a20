package gateway

import (
	"strings"
	"testing"
)

// TestStatusBoard: calls are counted by outcome with the forwarded ones,
// and a remote check's report, which the agent wrote, is kept bounded;
// an answer that is not a report is not kept.
func TestStatusBoard(t *testing.T) {
	b := newStatusBoard()
	b.observeCall("acme", 200, "", false)
	b.observeCall("acme", 403, "path_not_allowed", true)
	b.observeCall("acme", 404, "", false)
	b.observeCall("acme", 499, "", false)
	c := b.brokerCalls("acme")
	if c.Total != 4 || c.Forwarded != 1 || c.ByOutcome["2xx"] != 1 || c.ByOutcome["path_not_allowed"] != 1 ||
		c.ByOutcome["4xx"] != 1 || c.ByOutcome["canceled"] != 1 {
		t.Errorf("got %+v", c)
	}
	if c := b.brokerCalls("other"); c.Total != 0 || c.ByOutcome == nil {
		t.Errorf("a broker without calls: got %+v", c)
	}

	long := strings.Repeat("x", 10*maxCheckText)
	b.recordCheck("acme", "jira", "req-1", []byte(`{"site":"jira","ok":false,"results":[{"name":"tls","status":"fail","detail":"`+long+`","cause":"c","fix":"f","duration_ms":3}]}`))
	b.recordCheck("acme", "other", "req-2", []byte(`not json`))
	checks := b.siteChecks("acme")
	rc := checks["jira"]
	if len(checks) != 1 || rc == nil || rc.OK || rc.RequestID != "req-1" || len(rc.Results) != 1 || rc.Results[0].Cause != "c" {
		t.Fatalf("got %+v", checks)
	}
	if n := len(rc.Results[0].Detail); n > maxCheckText+3 {
		t.Errorf("a detail of %d bytes kept", n)
	}
}
