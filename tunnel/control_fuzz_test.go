package tunnel

import (
	"testing"
)

// FuzzDecodeMessage fuzzes the control messages' JSON directly (hello and
// welcome first), without the frame around them that FuzzReadFrame must
// get right before it reaches DecodeMessage. No input may panic; what
// decodes re-encodes to the same message; what a hello prints does not
// depend on its token.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range []Message{
		Hello{Protocol: 1, BrokerID: "acme-prod", Token: "fuzz-token-0123456789", AgentID: "6f1c", AgentVersion: "0.1.0",
			Hostname: "jira-gw-1", OS: "linux/amd64", Sites: []SiteInfo{{Name: "jira-cloud", Type: "jira", URL: "https://api.atlassian.com/ex/jira/18cd", AuthType: "service_account"}}},
		Welcome{SessionID: "7aeffbdc4cc262c0cb49090b", GatewayVersion: "dev"},
		Reject{Code: RejectUnauthorized, Message: "unknown broker id or wrong broker token"},
		GoAway{Reason: "gateway shutting down"},
		Sites{Sites: []SiteInfo{{Name: "a", Type: "jira"}}},
	} {
		b, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"type":"hello","protocol":1e400}`,
		`{"type":"hello","sites":[{"name":"\u0000"}],"token":"fuzz-token-0123456789","type":"welcome"}`,
		`{"type":"welcome","session_id":12}`,
		`{"type":"future-thing","x":[1,2,3]}`,
		`{"type":""}`,
		`[]`,
		`{"type":"hello","sites":null,"protocol":-1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in)
		if err != nil {
			return
		}
		if h, ok := m.(Hello); ok {
			// What a hello prints does not depend on its token at all.
			blank := h
			blank.Token = ""
			if h.String() != blank.String() || h.LogValue().String() != blank.LogValue().String() {
				t.Fatalf("hello printed its token: %s / %s", h.String(), h.LogValue())
			}
		}
		checkRoundTrip(t, m)
	})
}
