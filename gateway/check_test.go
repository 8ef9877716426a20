package gateway

import (
	"net/http"
	"testing"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/httprecord"
	"github.com/oxsecurity/oxbroker/tunnel"
)

const checkReportJSON = `{"site":"jira","ok":false,"results":[{"name":"credentials","status":"fail","cause":"c","fix":"f","duration_ms":3}]}`

// checkingAgent returns an agent that answers remote checks as the agent
// does, and records what it received.
func checkingAgent() *httprecord.Recorder {
	return &httprecord.Recorder{Next: http.HandlerFunc(answerCheck)}
}

func answerCheck(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(brokerhttp.HeaderOp) == "" {
		w.Write([]byte(`{"jira":"answer"}`))
		return
	}
	w.Header().Set(brokerhttp.HeaderOp, r.Header.Get(brokerhttp.HeaderOp))
	if r.Header.Get(brokerhttp.HeaderSite) != "jira" {
		brokerhttp.WriteError(w, brokerhttp.UnknownSite, "no such site", r.Header.Get(brokerhttp.HeaderRequestID))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(checkReportJSON))
}

func TestSiteCheck(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tg := startGateway(t)
			agent := checkingAgent()
			tg.connect(t, tr, tg.hello(), agent)

			resp, b := tg.call(t, "POST", "/v1/brokers/acme/sites/jira/check", tg.acmeConnector, nil, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			if string(b) != checkReportJSON {
				t.Errorf("body: got %s, want the agent's report %s", b, checkReportJSON)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			r := agent.Last(t)
			if r.Method != http.MethodPost || r.RequestURI != "/" {
				t.Errorf("the agent got %s %s, want POST /", r.Method, r.RequestURI)
			}
			if got := r.Header.Get(brokerhttp.HeaderOp); got != brokerhttp.OpCheck {
				t.Errorf("%s at the agent: got %q, want %q", brokerhttp.HeaderOp, got, brokerhttp.OpCheck)
			}
			if _, ok := r.Header["Authorization"]; ok {
				t.Error("the connector token reached the agent")
			}
			if id := r.Header.Get(brokerhttp.HeaderRequestID); id == "" || id != resp.Header.Get(brokerhttp.HeaderRequestID) {
				t.Errorf("request id: agent got %q, response has %q", id, resp.Header.Get(brokerhttp.HeaderRequestID))
			}

			// A connector cannot ask for an operation through /b/.
			h := http.Header{brokerhttp.HeaderOp: {brokerhttp.OpCheck}}
			resp, b = tg.call(t, "POST", "/b/acme/jira/", tg.acmeConnector, h, "")
			if resp.StatusCode != http.StatusOK || string(b) != `{"jira":"answer"}` {
				t.Errorf("/b/ with %s: got %d %s, want the plain request", brokerhttp.HeaderOp, resp.StatusCode, b)
			}
			if got := agent.Last(t).Header.Values(brokerhttp.HeaderOp); len(got) != 0 {
				t.Errorf("the connector's %s reached the agent: %q", brokerhttp.HeaderOp, got)
			}
		})
	}
}

func TestSiteCheckErrors(t *testing.T) {
	tg := startGateway(t)
	tg.connect(t, tunnel.TransportTCP, tg.hello(), checkingAgent())

	tests := []struct {
		name, path, token string
		wantStatus        int
		wantCode          brokerhttp.Code
	}{
		{"no token", "/v1/brokers/acme/sites/jira/check", "", 401, brokerhttp.Unauthorized},
		{"token of another broker", "/v1/brokers/acme/sites/jira/check", tg.otherConnector, 401, brokerhttp.Unauthorized},
		{"unknown broker", "/v1/brokers/nosuch/sites/jira/check", tg.acmeConnector, 404, brokerhttp.UnknownBroker},
		{"broker offline", "/v1/brokers/other/sites/jira/check", tg.otherConnector, 502, brokerhttp.BrokerOffline},
		{"unknown site", "/v1/brokers/acme/sites/nosite/check", tg.acmeConnector, 404, brokerhttp.UnknownSite},
		{"bad site name", "/v1/brokers/acme/sites/JIRA/check", tg.acmeConnector, 400, brokerhttp.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := tg.call(t, "POST", tt.path, tt.token, nil, "")
			brokerError(t, resp, b, tt.wantStatus, tt.wantCode)
		})
	}

	t.Run("GET", func(t *testing.T) {
		resp, _ := tg.call(t, "GET", "/v1/brokers/acme/sites/jira/check", tg.acmeConnector, nil, "")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("got %d, want 405", resp.StatusCode)
		}
	})
}

// TestSiteCheckAgentErrors: what the agent answers decides the gateway's
// answer.
func TestSiteCheckAgentErrors(t *testing.T) {
	tests := []struct {
		name       string
		agent      http.HandlerFunc
		wantStatus int
		wantCode   brokerhttp.Code
	}{
		{"agent error passes through", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(brokerhttp.HeaderOp, brokerhttp.OpCheck)
			brokerhttp.WriteError(w, brokerhttp.UnknownSite, "reloaded", r.Header.Get(brokerhttp.HeaderRequestID))
		}, 404, brokerhttp.UnknownSite},
		{"agent without remote checks", func(w http.ResponseWriter, r *http.Request) {
			// An older agent sends the request on to its proxy, whose
			// allowlist refuses POST /.
			brokerhttp.WriteError(w, brokerhttp.PathNotAllowed, "POST / is not allowed", r.Header.Get(brokerhttp.HeaderRequestID))
		}, 502, brokerhttp.BrokerOffline},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(brokerhttp.HeaderOp, brokerhttp.OpCheck)
			w.Write([]byte("<html>"))
		}, 502, brokerhttp.BrokerOffline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startGateway(t)
			tg.connect(t, tunnel.TransportTCP, tg.hello(), tt.agent)
			resp, b := tg.call(t, "POST", "/v1/brokers/acme/sites/jira/check", tg.acmeConnector, nil, "")
			brokerError(t, resp, b, tt.wantStatus, tt.wantCode)
		})
	}
}
