// Package testenv makes what the broker's tests set up around the parts
// they run: a folder with the gateway's certificate and its CA, the
// tokens of broker "acme" and of its connector, and a Jira stand-in that
// takes the Jira token as a bearer. The agent's tests, the end-to-end
// tests and the live package tests each start their gateway and agent in
// their own way around it.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

// Env is one test's world.
type Env struct {
	Dir            string        // the test's own temporary folder
	Certs          devcert.Files // the gateway's certificate and key, and the CA that signed them, in Dir
	BrokerToken    string        // broker acme's token, as its agent sends it
	ConnectorToken string        // the token of acme's connector
	JiraToken      string        // what the stand-in accepts as a bearer
	Jira           *jiratest.Server
	JiraURL        string // where the stand-in listens, until the test ends
}

// Options vary an Env; the zero value is the usual one.
type Options struct {
	// Names are the names in the gateway's certificate; 127.0.0.1 and
	// localhost when empty.
	Names []string
	// Token makes a token from a prefix that says what it is for
	// ("broker-"): the end-to-end tests remember each one, to scan the
	// whole run's output for it. Nil: the prefix and 24 random hex digits.
	Token func(prefix string) string
	// Wrap, when set, wraps the stand-in's handler (to count the calls in
	// flight, say).
	Wrap func(http.Handler) http.Handler
}

// New makes an Env whose stand-in stops when t ends.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if len(o.Names) == 0 {
		o.Names = []string{"127.0.0.1", "localhost"}
	}
	if o.Token == nil {
		o.Token = randomToken
	}
	e := &Env{Dir: t.TempDir(), BrokerToken: o.Token("broker-"), ConnectorToken: o.Token("connector-"), JiraToken: o.Token("jira-")}
	var err error
	if e.Certs, err = devcert.WriteFiles(e.Dir, "gateway", o.Names...); err != nil {
		t.Fatal(err)
	}
	e.Jira = jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: e.JiraToken}}})
	var h http.Handler = e.Jira
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.JiraURL = srv.URL
	return e
}

func randomToken(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
