package tunnel

import (
	"bytes"
	"testing"
)

// benchMessages are the control messages of a session's life, the hello
// as the agent sends it with two sites.
var benchMessages = []struct {
	name string
	m    Message
}{
	{"hello", Hello{Protocol: ProtocolVersion, BrokerID: "acme-prod", Token: "3q2+7w-broker-token-0123456789abcdef",
		AgentID: "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b", AgentVersion: "1.0.0", Hostname: "jira-gw-1", OS: "linux/amd64",
		Sites: []SiteInfo{
			{Name: "jira-cloud", Type: "jira", URL: "https://api.atlassian.com/ex/jira/18cd6e54-b562-4ed3-8a43-ca1fc772b26f", AuthType: "service_account"},
			{Name: "jira-dc", Type: "jira", URL: "https://jira.acme.internal", AuthType: "bearer"},
		}}},
	{"welcome", Welcome{SessionID: "0123456789abcdef01234567", GatewayVersion: "1.0.0"}},
	{"goaway", GoAway{Reason: "gateway shutting down"}},
}

// BenchmarkControlEncode measures EncodeMessage and AppendFrame: what
// Control.Send does before its write.
func BenchmarkControlEncode(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				p, err := EncodeMessage(bm.m)
				if err != nil {
					b.Fatal(err)
				}
				if buf, err = AppendFrame(buf[:0], p); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkControlDecode measures ReadFrame and DecodeMessage: what
// Control.Recv does after its read.
func BenchmarkControlDecode(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			p, err := EncodeMessage(bm.m)
			if err != nil {
				b.Fatal(err)
			}
			frame, err := AppendFrame(nil, p)
			if err != nil {
				b.Fatal(err)
			}
			r := bytes.NewReader(frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(frame)
				payload, err := ReadFrame(r)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := DecodeMessage(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
