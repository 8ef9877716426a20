package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStatusPages drives the status pages in headless Chromium against
// the real gateway, agent and Jira stand-in: the agent's page shows its
// tunnels up with their transport and its site; a call made through the
// gateway shows in "Recent calls" within 2 s without a reload, a refused
// one with its reason; "Run check" renders the check, step by step; the
// gateway's page shows the broker online with its sessions. Nothing
// either serves holds a token of the run, or the path or query of a call.
func TestStatusPages(t *testing.T) {
	b := newBrowser(t)
	agentAdmin := freeAddr(t)
	e, _, _ := newEnvUp(t, agentOpts{transport: "quic", admin: agentAdmin})
	agentURL := "http://" + agentAdmin + "/"

	b.do(chromedp.Navigate(agentURL))
	b.waitFor("two tunnels up over QUIC",
		`document.querySelectorAll('tr.tunnel[data-state="up"]').length == 2 &&
		 [...document.querySelectorAll('tr.tunnel td.transport')].every(td => td.textContent.trim() == "quic")`, 10*time.Second)
	b.waitFor("the site jira, up", `document.querySelector('#site-jira .badge.good')`, 5*time.Second)
	b.waitFor("the run-check button (the script ran)", `!document.getElementById('run-check').hidden`, 5*time.Second)
	// The page refreshes itself: mark this load, and check that it is
	// still the same document when the calls show.
	eval[bool](b, `(window.sameLoad = true)`)

	// A call with an issue key and a JQL query, which must never show.
	const key, query = "PRIVKEY-4711", "query=PRIVPROJ"
	// The page shows a call within 2 s of its answer (it refreshes every
	// second). A loaded machine can miss one refresh: three calls get a
	// chance each, and one of them must make it.
	var okID string
	for try := 1; ; try++ {
		resp, body := e.jiraCall("GET", "/rest/api/3/project/search?"+query, "")
		if resp.StatusCode != 200 {
			t.Fatalf("call: %d %s", resp.StatusCode, body)
		}
		okID = resp.Header.Get("Ox-Broker-Request-Id")
		took, ok := b.shows(fmt.Sprintf(`document.querySelector('tr.call[data-request-id=%q]')`, okID), 2*time.Second)
		if ok {
			t.Logf("call %d showed on the page %s after its answer", try, took.Round(time.Millisecond))
			break
		}
		if try == 3 {
			b.waitFor("a call in recent calls within 2 s of its answer (3 tries)", fmt.Sprintf(`document.querySelector('tr.call[data-request-id=%q]')`, okID), 0)
		}
	}
	row := eval[string](b, fmt.Sprintf(`document.querySelector('tr.call[data-request-id=%q]').innerText`, okID))
	for _, want := range []string{"searchProjects", "/rest/api/3/project/search", "200", "GET"} {
		if !strings.Contains(row, want) {
			t.Errorf("the call's row %q lacks %q", row, want)
		}
	}
	// Jira's own 404 for an issue key, shown by its template.
	resp, body := e.jiraCall("GET", "/rest/api/3/issue/"+key, "")
	if resp.StatusCode != 404 || resp.Header.Get("Ox-Broker-Error") != "" {
		t.Fatalf("call of a missing issue: %d %s", resp.StatusCode, body)
	}
	b.waitFor("the 404 by its template", fmt.Sprintf(`(r => r && r.innerText.includes('/rest/api/3/issue/{issueIdOrKey}'))(document.querySelector('tr.call[data-request-id=%q]'))`,
		resp.Header.Get("Ox-Broker-Request-Id")), 5*time.Second)

	resp, body = e.jiraCall("POST", "/rest/api/3/user", "{}")
	if resp.StatusCode != 403 {
		t.Fatalf("refused call: %d %s", resp.StatusCode, body)
	}
	refusedID := resp.Header.Get("Ox-Broker-Request-Id")
	b.waitFor("the refused call with its reason", fmt.Sprintf(
		`(r => r && r.classList.contains('refused') && r.innerText.includes('path_not_allowed') && r.innerText.includes('allowlist: needs a scope not granted'))(document.querySelector('tr.call[data-request-id=%q]'))`,
		refusedID), 5*time.Second)
	if !eval[bool](b, `window.sameLoad === true`) {
		t.Error("the page reloaded to show the calls; it should refresh in place")
	}

	b.do(chromedp.Click(chromedp.CSS("#run-check")))
	b.waitFor("the check's result", `(c => c.innerText.includes('All checks passed') && c.querySelectorAll('tr.step').length >= 8)(document.getElementById('check-result'))`, 40*time.Second)
	steps := eval[string](b, `document.getElementById('check-result').innerText`)
	for _, want := range []string{"Gateway", "auth", "Site jira", "credentials", "permissions"} {
		if !strings.Contains(steps, want) {
			t.Errorf("the check's result lacks %q:\n%s", want, steps)
		}
	}
	b.waitFor("the site's last check", `document.querySelectorAll('#site-jira tr.step').length >= 4`, 5*time.Second)
	shot := b.screenshot("status-agent.png", true)
	agentDOM := eval[string](b, `document.documentElement.outerHTML`)

	// The gateway's page: the broker online with its two sessions. A
	// remote check of the site shows in its row.
	if resp, body := e.call("POST", "/v1/brokers/acme/sites/jira/check", e.ConnectorToken, ""); resp.StatusCode != 200 {
		t.Fatalf("remote check: %d %s", resp.StatusCode, body)
	}
	b.do(chromedp.Navigate("http://" + e.adminAddr + "/"))
	b.waitFor("broker acme online", `(d => d && d.querySelector('summary').innerText.includes('online'))(document.getElementById('broker-acme'))`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#broker-acme summary")))
	b.waitFor("its two sessions over QUIC", `document.querySelectorAll('#broker-acme tr.session').length == 2 &&
		[...document.querySelectorAll('#broker-acme tr.session td.transport')].every(td => td.textContent.trim() == "quic")`, 5*time.Second)
	b.waitFor("the site's remote check", `document.querySelectorAll('#broker-acme #check-jira tr.step').length >= 4`, 5*time.Second)
	b.waitFor("the calls of the last hour", `document.querySelector('#broker-acme').innerText.includes('path_not_allowed 1')`, 5*time.Second)
	gwShot := b.screenshot("status-gateway.png", true)
	gatewayDOM := eval[string](b, `document.documentElement.outerHTML`)

	// A phone's width: the agent's page still fits.
	b.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(agentURL))
	b.waitFor("the page at a phone's width", `document.querySelector('#site-jira')`, 5*time.Second)
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > 400 {
		t.Errorf("at 390 px the page is %v px wide; tables should scroll inside their box", w)
	}
	phone := b.screenshot("status-agent-phone.png", false)
	t.Logf("screenshots: %s, %s, %s", shot, gwShot, phone)

	// Every byte both pages and their APIs serve, and what the browser
	// rendered, joins the end-of-run scan for the run's tokens
	// (recordingTransport, recordOutput); none may hold the call's path
	// or query either.
	served := agentDOM + gatewayDOM
	for _, u := range []string{agentURL, agentURL + "api/status", agentURL + "api/calls", agentURL + "assets/page.js", agentURL + "assets/style.css",
		"http://" + e.adminAddr + "/", "http://" + e.adminAddr + "/api/status"} {
		code, body := httpGet(t, u)
		if code != 200 {
			t.Errorf("GET %s: %d", u, code)
		}
		served += body
	}
	recordOutput("the status pages as rendered", agentDOM+gatewayDOM)
	for _, private := range []string{key, "PRIVPROJ", query} {
		if strings.Contains(served, private) {
			t.Errorf("the status pages serve %q, from a call's path or query", private)
		}
	}
	for _, tok := range []string{e.BrokerToken, e.ConnectorToken, e.JiraToken} {
		if strings.Contains(served, tok) {
			t.Errorf("the status pages serve a token of the run (%s…)", tok[:12])
		}
	}

	// The API says what the page shows.
	var st struct {
		Ready   bool `json:"ready"`
		Tunnels []struct {
			State, Transport string
			RTT              float64 `json:"rtt_ms"`
		} `json:"tunnels"`
		Sites []struct {
			Name    string `json:"name"`
			Traffic struct {
				Last5m map[string]int `json:"last_5m"`
			} `json:"traffic"`
		} `json:"sites"`
		Check *struct {
			OK bool `json:"ok"`
		} `json:"check"`
	}
	getJSON(t, agentURL+"api/status", &st)
	if !st.Ready || len(st.Tunnels) != 2 || st.Tunnels[0].State != "up" || len(st.Sites) != 1 || st.Check == nil || !st.Check.OK {
		t.Errorf("/api/status: got %+v", st)
	}
	if n := st.Sites[0].Traffic.Last5m; n["2xx"] < 1 || n["refused"] != 1 {
		t.Errorf("/api/status traffic: got %v, want at least one 2xx and one refused", n)
	}
	var calls []struct {
		RequestID string `json:"request_id"`
		Code      string `json:"code"`
	}
	getJSON(t, agentURL+"api/calls?status=refused", &calls)
	if len(calls) != 1 || calls[0].RequestID != refusedID || calls[0].Code != "path_not_allowed" {
		t.Errorf("/api/calls?status=refused: got %+v, want the refused call alone", calls)
	}
}

// getJSON decodes the 200 answer of GET url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
