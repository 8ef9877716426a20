package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCloudSiteDownAtStart: with a cloud_site whose Cloud ID cannot be
// read (its host refuses connections), the real agent starts, connects and
// serves its other site; calls to the site that is down get 502
// upstream_unreachable naming the cause, and /readyz stays ready while
// naming that site.
func TestCloudSiteDownAtStart(t *testing.T) {
	e := newEnv(t)
	e.startGateway()
	// A port nobody listens on: the Cloud ID read fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	admin := freeAddr(t)
	a := e.startAgent(agentOpts{transport: "tcp", connections: 1, admin: admin, extraSites: `  - name: cloud
    cloud_site: ` + dead + `
    atlassian_api: ` + e.JiraURL + `
    auth:
      type: service_account
      token: ${JIRA_TOKEN}
`})
	a.waitOutput(t, "site is down: cannot read its Cloud ID", 20*time.Second)
	e.waitSessions(1, "tcp", 15*time.Second)

	if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
		t.Errorf("the other site: got %d %s, want 200", resp.StatusCode, b)
	}
	resp, b := e.call("GET", "/b/acme/cloud/rest/api/3/myself", e.ConnectorToken, "")
	var body struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &body)
	if resp.StatusCode != 502 || body.Error.Code != "upstream_unreachable" ||
		!strings.Contains(body.Error.Message, "site cloud is down: the Cloud ID of "+dead+" cannot be read") ||
		!strings.Contains(body.Error.Message, "connection refused") {
		t.Errorf("the site that is down: got %d %s, want 502 upstream_unreachable naming the cause", resp.StatusCode, b)
	}
	code, ready := httpGet(t, "http://"+admin+"/readyz")
	if code != 200 || !strings.Contains(ready, "site cloud: the Cloud ID of "+dead+" cannot be read") {
		t.Errorf("/readyz: got %d %q, want 200 naming the site that is down", code, ready)
	}
}
