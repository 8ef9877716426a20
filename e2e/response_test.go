package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/connectortest"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

// linkClient is a connector that follows the links in Jira's answers, as
// the Python jira library's Issue.update() does, and keeps every answer
// it got.
type linkClient struct {
	t        *testing.T
	e        *env
	received []string // status line, headers and body of each answer
}

// do calls an absolute URL with the connector token; it must point at the
// gateway's API.
func (c *linkClient) do(method, rawURL, body string) (*http.Response, []byte) {
	c.t.Helper()
	if !strings.HasPrefix(rawURL, "http://"+c.e.apiAddr+"/b/acme/") {
		c.t.Fatalf("%s %s: the link does not point at the gateway (http://%s/b/acme/...)", method, rawURL, c.e.apiAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What Python's requests sends: the agent must answer readably.
	h := http.Header{"Content-Type": {"application/json"}, "Accept-Encoding": {"gzip, deflate"}}
	resp, b, err := connectortest.Call(ctx, http.DefaultClient, method, rawURL, c.e.ConnectorToken, h, body)
	if err != nil {
		c.t.Fatal(err)
	}
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s -> %s\n", method, rawURL, resp.Status)
	resp.Header.Write(&head)
	c.received = append(c.received, head.String()+"\n"+string(b))
	return resp, b
}

func (c *linkClient) want(resp *http.Response, body []byte, status int, what string) {
	c.t.Helper()
	if resp.StatusCode != status {
		c.t.Fatalf("%s: got %d %s, want %d", what, resp.StatusCode, body, status)
	}
}

// TestLinksThroughGateway: a connector that creates an issue, follows its
// self and its comment's self with PUTs and pages a list by following
// nextPage stays on the gateway, for a Data Center site at the root, one
// under a context path and a Cloud site (cloud_site, through
// /ex/jira/<cloudId>); every call reaches Jira with the site's
// credentials; Jira's address appears in no answer but in human links,
// and a /browse/ link is left as it is.
func TestLinksThroughGateway(t *testing.T) {
	e := newEnv(t)
	dc := jiratest.New(jiratest.Options{ContextPath: "/jira",
		Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: e.JiraToken}}})
	dcSrv := httptest.NewServer(dc)
	t.Cleanup(dcSrv.Close)
	e.startGateway()
	admin := freeAddr(t)
	e.startAgent(agentOpts{transport: "tcp", admin: admin, extraSites: fmt.Sprintf(`  - name: dc
    url: %s/jira
    auth:
      type: bearer
      token: ${JIRA_TOKEN}
  - name: cloud
    cloud_site: %s
    atlassian_api: %s
    auth:
      type: service_account
      token: ${JIRA_TOKEN}
`, dcSrv.URL, e.JiraURL, e.JiraURL)})
	e.waitSessions(2, "tcp", 15*time.Second)

	c := &linkClient{t: t, e: e}
	stand := map[string]*jiratest.Server{"jira": e.Jira, "dc": dc, "cloud": e.Jira}
	web := map[string]string{"jira": e.JiraURL, "dc": dcSrv.URL + "/jira", "cloud": e.JiraURL}
	for i, site := range []string{"jira", "dc", "cloud"} {
		t.Run(site, func(t *testing.T) {
			c.t = t
			gw := "http://" + e.apiAddr + "/b/acme/" + site + "/rest/api/2/"
			project := fmt.Sprintf("LNK%d", i)
			browse := web[site] + "/browse/" + project + "-1"
			resp, b := c.do("POST", gw+"issue", `{"fields":{"project":{"key":"`+project+`"},"summary":"links","description":"See `+browse+`"}}`)
			c.want(resp, b, http.StatusCreated, "create issue")
			var created struct{ Key, Self string }
			json.Unmarshal(b, &created)
			if !strings.HasPrefix(created.Self, gw+"issue/") {
				t.Fatalf("created issue's self: got %q, want it under %s", created.Self, gw)
			}
			if loc := resp.Header.Get("Location"); loc != created.Self {
				t.Errorf("Location: got %q, want %q", loc, created.Self)
			}

			stand[site].Reset()
			resp, b = c.do("PUT", created.Self, `{"fields":{"summary":"edited through self"}}`)
			c.want(resp, b, http.StatusNoContent, "PUT the issue's self")

			resp, b = c.do("POST", created.Self+"/comment", `{"body":"first"}`)
			c.want(resp, b, http.StatusCreated, "add comment")
			var cm struct{ Self string }
			json.Unmarshal(b, &cm)
			if !strings.HasPrefix(cm.Self, gw+"issue/") {
				t.Fatalf("comment's self: got %q, want it under %s", cm.Self, gw)
			}
			resp, b = c.do("PUT", cm.Self, `{"body":"edited through self"}`)
			c.want(resp, b, http.StatusOK, "PUT the comment's self")

			// Both edits reached Jira, with the site's credentials.
			reqs := stand[site].Requests()
			if len(reqs) != 3 {
				t.Fatalf("Jira got %d requests, want 3", len(reqs))
			}
			for _, r := range reqs {
				if got := r.Header.Get("Authorization"); got != "Bearer "+e.JiraToken {
					t.Errorf("%s %s reached Jira without the site's credential", r.Method, r.Path)
				}
			}
			if reqs[0].Method != "PUT" || reqs[2].Method != "PUT" || !strings.Contains(reqs[2].Path, "/comment/") {
				t.Errorf("Jira got %s %s and %s %s, want the two PUTs", reqs[0].Method, reqs[0].Path, reqs[2].Method, reqs[2].Path)
			}
			resp, b = c.do("GET", created.Self, "")
			c.want(resp, b, http.StatusOK, "GET the issue's self")
			var is struct {
				Fields struct {
					Summary, Description string
					Comment              struct{ Comments []struct{ Body string } }
				}
			}
			json.Unmarshal(b, &is)
			if is.Fields.Summary != "edited through self" || len(is.Fields.Comment.Comments) != 1 || is.Fields.Comment.Comments[0].Body != "edited through self" {
				t.Errorf("after the PUTs: summary %q, comments %+v", is.Fields.Summary, is.Fields.Comment.Comments)
			}
			if is.Fields.Description != "See "+browse {
				t.Errorf("the /browse/ link changed: got %q, want %q", is.Fields.Description, "See "+browse)
			}

			// Page the projects by following nextPage.
			for j := range 4 {
				resp, b = c.do("POST", gw+"issue", fmt.Sprintf(`{"fields":{"project":{"key":"PG%d%d"},"summary":"page"}}`, i, j))
				c.want(resp, b, http.StatusCreated, "create issue")
			}
			next := gw + "project/search?startAt=0&maxResults=2"
			seen := map[string]bool{}
			total := -1
			for pages := 0; next != ""; pages++ {
				if pages > 10 {
					t.Fatal("more than 10 pages")
				}
				resp, b = c.do("GET", next, "")
				c.want(resp, b, http.StatusOK, "project/search")
				var page struct {
					Self, NextPage string
					Total          int
					Values         []struct{ Key, Self string }
				}
				json.Unmarshal(b, &page)
				if page.Self != next {
					t.Errorf("page self: got %q, want %q", page.Self, next)
				}
				for _, v := range page.Values {
					seen[v.Key] = true
					if !strings.HasPrefix(v.Self, gw+"project/") {
						t.Errorf("project self %q is not under %s", v.Self, gw)
					}
				}
				total, next = page.Total, page.NextPage
			}
			if total < 5 || len(seen) != total {
				t.Errorf("paging by nextPage saw %d projects of %d", len(seen), total)
			}
		})
	}
	c.t = t

	// Jira's addresses appear in no answer, but in links for people:
	// the /browse/ links of the descriptions, the site's static icons.
	for _, upstream := range []string{e.JiraURL, dcSrv.URL} {
		re := regexp.MustCompile(regexp.QuoteMeta(upstream) + `[^"\s]*`)
		for _, r := range c.received {
			for _, link := range re.FindAllString(r, -1) {
				u, err := url.Parse(link)
				if err != nil || strings.Contains(u.Path, "/rest/") || strings.HasPrefix(u.Path, "/ex/") {
					t.Errorf("Jira's address in an answer, in %q:\n%s", link, r)
				} else if !strings.Contains(u.Path, "/browse/") && !strings.Contains(u.Path, "/images/") && u.Path != "/" && u.Path != "/jira/" {
					t.Errorf("unexpected link to Jira %q in:\n%s", link, r)
				}
			}
		}
	}
	// Beyond the issue GETs, whose statuses and priorities carry icon
	// links, the answers do not name Jira at all.
	for _, r := range c.received {
		if strings.Contains(r, "\"fields\"") {
			continue
		}
		for _, upstream := range []string{e.JiraURL, dcSrv.URL} {
			if strings.Contains(r, strings.TrimPrefix(upstream, "http://")) {
				t.Errorf("an answer names Jira (%s):\n%s", upstream, r)
			}
		}
	}

	_, metrics := httpGet(t, "http://"+admin+"/metrics")
	for _, site := range []string{"jira", "dc", "cloud"} {
		if !regexp.MustCompile(`oxbroker_links_rewritten_total\{site="` + site + `"\} [1-9]`).MatchString(metrics) {
			t.Errorf("no links counted for %s in:\n%s", site, grepLines(metrics, "oxbroker_links"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReflectedCredentialThroughGateway: a Jira (or a proxy in front of
// it) that echoes the Authorization header, into a header, a JSON body and
// myself's displayName, gives the connector and the remote check no form
// of the site's token. The run's secret scan (harness_test.go) reads
// every answer too.
func TestReflectedCredentialThroughGateway(t *testing.T) {
	e := newEnv(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", auth)
		switch {
		case strings.HasSuffix(r.URL.Path, "/myself"):
			fmt.Fprintf(w, `{"displayName":%q,"accountType":"app","active":true}`, auth)
		default:
			fmt.Fprintf(w, `{"permissions":{},"seen":%q}`, strings.ReplaceAll(auth, "/", `\/`))
		}
	}))
	t.Cleanup(echo.Close)
	e.startGateway()
	e.startAgent(agentOpts{transport: "tcp", extraSites: fmt.Sprintf(`  - name: echo
    url: %s
    auth:
      type: basic
      email: me@acme.com
      token: ${JIRA_TOKEN}
`, echo.URL)})
	e.waitSessions(2, "tcp", 15*time.Second)

	resp, b := e.call("GET", "/b/acme/echo/rest/api/3/myself", e.ConnectorToken, "")
	if resp.StatusCode != 200 {
		t.Fatalf("myself: %d %s", resp.StatusCode, b)
	}
	var all strings.Builder
	resp.Header.Write(&all)
	all.Write(b)
	if strings.Contains(all.String(), e.JiraToken) || !strings.Contains(all.String(), "REDACTED") {
		t.Errorf("the answer holds the token or no marker:\n%s", all.String())
	}
	resp, b = e.call("POST", "/v1/brokers/acme/sites/echo/check", e.ConnectorToken, "")
	if resp.StatusCode != 200 || strings.Contains(string(b), e.JiraToken) || !strings.Contains(string(b), "REDACTED") {
		t.Errorf("remote check: got %d %s, want 200 with the marker and no token", resp.StatusCode, b)
	}
}
