package e2e

// The HTTP side of the abuse suite (issue 12): hostile connector requests
// through the real gateway and agent, and hostile streams into the real
// agent, with a recording upstream that shows exactly what reached Jira.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/rawhttp"
	"github.com/oxsecurity/oxbroker/proxy"
)

// answerBound bounds the wait for an answer the broker must send at once.
// A failing case waits this long; a passing one does not wait at all: the
// assertion is that the answer arrives, not how fast.
const answerBound = 10 * time.Second

// TestHostileHTTP runs the hostile HTTP corpus: request headers (finding
// 1), near-dot paths (finding 3) and refusals before the body (finding
// 5), through the gateway and straight into the agent's tunnel streams.
func TestHostileHTTP(t *testing.T) {
	concurrently(t, []namedTest{
		{"through-the-gateway", testHostileThroughGateway},
		{"agent-streams", testHostileAgentStreams},
	})
}

// extraSite is a second site of the agent, on the recording upstream,
// that forwards one more header (allow.headers).
func extraSite(upstream string) string {
	return fmt.Sprintf(`  - name: jira-extra
    url: %s
    auth:
      type: bearer
      token: ${JIRA_TOKEN}
    allow:
      headers: [X-Acme-Trace]
`, upstream)
}

// nearDotTargets are paths below a site that a server which trims or
// normalises names reads as "." or ".." (issue 12, finding 3).
var nearDotTargets = []string{
	"/rest/api/3/issue/..%20/..%20/secure/admin",
	"/rest/api/3/issue/.%20/myself",
	"/rest/api/3/issue/..%c2%a0/..%c2%a0/secure",
	"/rest/api/3/issue/%e3%80%82%e3%80%82/%e3%80%82%e3%80%82/secure",
	"/rest/api/3/issue/%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/secure",
	"/rest/api/3/issue/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecure",
	"/rest/api/3/issue/..::$DATA/..::$DATA/secure",
	"/rest/api/3/myself::$DATA",
	"/rest/api/3/myself.",
	"/rest/api/3/myself%20",
}

func testHostileThroughGateway(t *testing.T) {
	e, up := newRecordingEnv(t)
	e.startGateway()
	e.startAgent(agentOpts{transport: "tcp", extraSites: extraSite(up.url)})
	e.waitSessions(2, "tcp", 15*time.Second)
	e.mustServe("before the corpus")
	auth := "Authorization: Bearer " + e.ConnectorToken + "\r\n"

	t.Run("headers", func(t *testing.T) {
		dropped := []string{
			"X_Forwarded_For: 1.2.3.4",
			"Proxy_Authorization: Basic Zm9vOmJhcg==",
			"X-HTTP-Method_Override: DELETE",
			"X-Original_URL: /secure/admin",
			"X-Remote-User: admin",
			"X-AUSERNAME: admin",
			"X-Original-URI: /secure/admin",
			"X-Host: evil.example",
			"X-HTTP-Host-Override: evil.example",
			"Cookie: JSESSIONID=0123",
			"X-Forwarded-Host: evil.example",
			"Forwarded: for=1.2.3.4",
			"X-Custom: 1",
		}
		kept := map[string]string{
			"Accept":                  "application/json",
			"Accept-Language":         "de-DE",
			"If-None-Match":           `"abc"`,
			"X-Atlassian-Token":       "no-check",
			"X-Experimentalapi":       "opt-in",
			"X-Force-Accept-Language": "true",
			"User-Agent":              "ox-connector/e2e",
		}
		// The agent's own: the site's credentials, and identity encoding
		// (it reads every answer for the credential and Jira's links).
		allowed := map[string]bool{"Authorization": true, "Accept-Encoding": true}
		for _, h := range proxy.ForwardedHeaders {
			allowed[http.CanonicalHeaderKey(h)] = true
		}
		for _, site := range []string{"jira", "jira-extra"} {
			t.Run(site, func(t *testing.T) {
				marker := "case=headers-" + site
				req := "GET /b/acme/" + site + "/rest/api/3/myself?" + marker + " HTTP/1.1\r\nHost: gw\r\n" + auth
				for _, h := range dropped {
					req += h + "\r\n"
				}
				for k, v := range kept {
					req += k + ": " + v + "\r\n"
				}
				req += "X-Acme-Trace: t-1\r\n"
				resp, body := rawAnswer(t, e.apiAddr, req+"Connection: close\r\n\r\n")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %s, want 200", resp.StatusCode, body)
				}
				seen := up.matching(marker)
				if len(seen) != 1 {
					t.Fatalf("%d requests reached Jira, want 1", len(seen))
				}
				got := seen[0].Header
				siteAllowed := allowed
				if site == "jira-extra" {
					siteAllowed = map[string]bool{"X-Acme-Trace": true}
					for k := range allowed {
						siteAllowed[k] = true
					}
				}
				for k, vs := range got {
					if strings.Contains(k, "_") || !siteAllowed[k] {
						t.Errorf("header %s: %q reached Jira", k, vs)
					}
				}
				for k, want := range kept {
					if v := got.Values(k); len(v) != 1 || v[0] != want {
						t.Errorf("%s at Jira: got %q, want [%q]", k, v, want)
					}
				}
				if auth := got.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+e.JiraToken {
					t.Error("Authorization at Jira is not the site's token alone")
				}
				if _, ok := got["X-Acme-Trace"]; ok != (site == "jira-extra") {
					t.Errorf("X-Acme-Trace at Jira: %v, want it only where allow.headers names it", ok)
				}
			})
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		resp, body := rawAnswer(t, e.apiAddr, "HEAD /b/acme/jira/rest/api/3/myself?case=head-only HTTP/1.1\r\nHost: gw\r\n"+auth+"Connection: close\r\n\r\n")
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Errorf("HEAD: got %d and %d body bytes, want 200 and none", resp.StatusCode, len(body))
		}
		if seen := up.matching("case=head-only"); len(seen) != 1 || seen[0].Method != "HEAD" {
			t.Errorf("Jira saw %d requests (the first %s), want one HEAD", len(seen), firstMethod(seen))
		}
	})

	t.Run("near-dot paths", func(t *testing.T) {
		up.reset()
		var cases []namedTest
		for _, target := range nearDotTargets {
			cases = append(cases, namedTest{target, func(t *testing.T) {
				resp, body := rawAnswer(t, e.apiAddr, "GET /b/acme/jira"+target+" HTTP/1.1\r\nHost: gw\r\n"+auth+"Connection: close\r\n\r\n")
				wantCode(t, resp, body, brokerhttp.BadRequest)
			}})
		}
		concurrently(t, cases)
		for _, r := range up.requests() {
			t.Errorf("Jira received %s %s", r.Method, r.RequestURI)
		}
	})

	t.Run("early refusals", func(t *testing.T) {
		up.reset()
		post := func(path, token, length string) string {
			h := "POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: " + length + "\r\n"
			if token != "" {
				h += "Authorization: Bearer " + token + "\r\n"
			}
			return h + "\r\n" // and then nothing: the connector waits for the answer
		}
		tok := e.ConnectorToken
		runEarlyRefusals(t, up, func() (net.Conn, error) { return net.Dial("tcp", e.apiAddr) }, []earlyCase{
			{"401 no token", post("/b/acme/jira/rest/api/3/issue", "", "1000"), brokerhttp.Unauthorized},
			{"401 no token, 60 MB", post("/b/acme/jira/rest/api/3/issue", "", "60000000"), brokerhttp.Unauthorized},
			{"404 unknown broker", post("/b/nosuch/jira/rest/api/3/issue", tok, "1000"), brokerhttp.UnknownBroker},
			{"404 unknown site", post("/b/acme/nosite/rest/api/3/issue", tok, "1000"), brokerhttp.UnknownSite},
			{"403 not allowed", post("/b/acme/jira/rest/api/3/user", tok, "1000"), brokerhttp.PathNotAllowed},
			{"413 over max_body", post("/b/acme/jira/rest/api/3/issue/ABC-1/attachments", tok, "60000000"), brokerhttp.TooLarge},
			{"400 near-dot path", post("/b/acme/jira/rest/api/3/issue/..%20/..%20/secure", tok, "1000"), brokerhttp.BadRequest},
		})
	})
	e.mustServe("after the corpus")
}

// testHostileAgentStreams sends the refusals straight into the agent's
// tunnel streams, from a gateway (the fake one) that declares a body and
// waits: the agent's answer comes at once and the stream is closed.
func testHostileAgentStreams(t *testing.T) {
	e, up := newRecordingEnv(t)
	f := newFakeGateway(t, e)
	e.startAgent(agentOpts{transport: "tcp", address: f.Addr(), serverName: "127.0.0.1", connections: 1})
	fs := f.Next(t, 20*time.Second)
	if code, err := get(fs, "/rest/api/3/myself", 10*time.Second); err != nil || code != 200 {
		t.Fatalf("before the corpus: %d, %v", code, err)
	}
	up.reset()
	post := func(site, path, length string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: agent\r\nOx-Broker-Site: " + site + "\r\nOx-Broker-Request-Id: hostile\r\n" +
			"Content-Type: application/json\r\nContent-Length: " + length + "\r\n\r\n"
	}
	dial := func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), answerBound)
		defer cancel()
		return fs.Session.OpenStream(ctx)
	}
	runEarlyRefusals(t, up, dial, []earlyCase{
		{"404 unknown site", post("nosite", "/rest/api/3/issue", "1000"), brokerhttp.UnknownSite},
		{"403 not allowed", post("jira", "/rest/api/3/user", "1000"), brokerhttp.PathNotAllowed},
		{"413 over max_body", post("jira", "/rest/api/3/issue/ABC-1/attachments", "60000000"), brokerhttp.TooLarge},
		{"400 near-dot path", post("jira", "/rest/api/3/issue/%e3%80%82%e3%80%82/secure", "1000"), brokerhttp.BadRequest},
	})
	if code, err := get(fs, "/rest/api/3/myself", 10*time.Second); err != nil || code != 200 {
		t.Errorf("after the corpus: %d, %v", code, err)
	}
}

// earlyCase is a request header whose body never comes, and the refusal
// it must get.
type earlyCase struct {
	name string
	raw  string
	code brokerhttp.Code
}

// runEarlyRefusals runs the cases at once, each on a connection from dial,
// and checks that none of them reached the upstream.
func runEarlyRefusals(t *testing.T, up *recordingUpstream, dial func() (net.Conn, error), cases []earlyCase) {
	t.Helper()
	var tests []namedTest
	for _, c := range cases {
		tests = append(tests, namedTest{c.name, func(t *testing.T) { earlyRefusal(t, dial, c.raw, c.code) }})
	}
	concurrently(t, tests)
	for _, r := range up.requests() {
		t.Errorf("Jira received %s %s", r.Method, r.RequestURI)
	}
}

// earlyRefusal sends the header of a request whose body never comes, on a
// connection from dial, and checks that the refusal arrives and that the
// connection is then closed rather than kept to drain the body.
func earlyRefusal(t *testing.T, dial func() (net.Conn, error), raw string, code brokerhttp.Code) {
	t.Helper()
	nc, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	c := rawhttp.New(nc, time.Now().Add(answerBound))
	defer c.Close()
	resp, body, _, err := c.Send(raw)
	if err != nil {
		t.Fatalf("no answer while the body is unsent: %v", err)
	}
	recordOutput("early refusal "+t.Name(), resp.Status+"\n"+string(body))
	wantCode(t, resp, body, code)
	if err := c.Closed(); err != nil {
		t.Errorf("%v: the body would be drained", err)
	}
}

// rawAnswer writes req as it is on a new connection to addr and reads one
// answer (joining the secret scan).
func rawAnswer(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := rawhttp.Dial(addr, time.Now().Add(answerBound))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, body, _, err := c.Send(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	recordOutput("raw answer "+t.Name(), resp.Status+"\n"+string(body))
	return resp, body
}

// wantCode checks that an answer is the broker's error code.
func wantCode(t *testing.T, resp *http.Response, body []byte, code brokerhttp.Code) {
	t.Helper()
	if resp.StatusCode != code.Status() || resp.Header.Get(brokerhttp.HeaderError) != string(code) {
		t.Errorf("got %d %q %s, want %d %s", resp.StatusCode, resp.Header.Get(brokerhttp.HeaderError), body, code.Status(), code)
	}
}

func firstMethod(reqs []upstreamRequest) string {
	if len(reqs) == 0 {
		return "none"
	}
	return reqs[0].Method
}
