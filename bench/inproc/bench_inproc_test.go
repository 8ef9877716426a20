package inproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/bench/load"
	"github.com/oxsecurity/oxbroker/bench/rig"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

var transports = []string{"tcp", "quic"}

// broker is a stand-in, a gateway and an agent running in this process.
type broker struct {
	api      string // host:port of the gateway's connector API
	prefix   string // /b/{broker}/{site}
	rig      *rig.Rig
	jiraURL  string
	attachID string
}

// download is the size of the synthetic attachment of BenchmarkBrokerDownload.
const download = 32 << 20

func start(b *testing.B, transport string) *broker {
	b.Helper()
	r, err := rig.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	standin := jiratest.New(jiratest.Options{Credentials: []jiratest.Credential{{Scheme: jiratest.SchemeBearer, Token: r.JiraToken}}})
	standin.AddIssue("BENCH", "load")
	attach := standin.AddAttachment(standin.AddIssue("BENCH", "download"), "big.bin", download)
	jira := httptest.NewServer(standin)
	b.Cleanup(jira.Close)

	addrs, err := rig.FreeGatewayAddrs()
	if err != nil {
		b.Fatal(err)
	}
	addrs.Admin = "" // only the binary serves it
	gcfg, err := config.ParseGateway(r.GatewayConfig(addrs, "info"), nil)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(gcfg, gateway.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		b.Fatal(err)
	}
	acfgYAML, err := r.AgentConfig(rig.Agent{Transport: transport, Tunnel: addrs.Tunnel, JiraURL: jira.URL, Level: "info"})
	if err != nil {
		b.Fatal(err)
	}
	acfg, err := config.ParseAgent(acfgYAML, func(k string) (string, bool) {
		if k == "JIRA_TOKEN" {
			return r.JiraToken, true
		}
		return "", false
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, acfg, agent.Options{Logger: log})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.Serve(ctx) }()
	go func() { defer wg.Done(); a.Run(ctx) }()
	b.Cleanup(func() { cancel(); wg.Wait() })

	br := &broker{api: addrs.API, prefix: "/b/" + rig.BrokerID + "/" + rig.Site, rig: r, jiraURL: jira.URL, attachID: attach}
	br.waitSessions(b, 2, transport)
	return br
}

// waitSessions waits until the broker has n sessions on transport.
func (br *broker) waitSessions(b *testing.B, n int, transport string) {
	b.Helper()
	testwait.For(b, 20*time.Second, fmt.Sprintf("%d sessions over %s", n, transport), func() bool {
		req, _ := http.NewRequest("GET", "http://"+br.api+"/v1/brokers/"+rig.BrokerID, nil)
		req.Header.Set("Authorization", "Bearer "+br.rig.ConnectorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		var st gateway.BrokerStatus
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		ok := err == nil && len(st.Sessions) == n
		for _, s := range st.Sessions {
			ok = ok && s.Transport == transport
		}
		return ok
	})
}

func (br *broker) header() map[string]string {
	return map[string]string{"Authorization": "Bearer " + br.rig.ConnectorToken, "Accept": "application/json"}
}

// BenchmarkBrokerGET measures GET /rest/api/3/issue/{key} (about 4 KiB)
// through gateway and agent, 32 connections at once on GOMAXPROCS 2. Its
// ns/op is wall time per request at that concurrency.
func BenchmarkBrokerGET(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			br := start(b, transport)
			req := load.Request(br.api, br.prefix+"/rest/api/3/issue/BENCH-1", br.header())
			warm := load.NewConn(br.api)
			if st, err := warm.Do(req); err != nil || st != 200 {
				b.Fatalf("GET through the broker: status %d, %v", st, err)
			}
			warm.Close()
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := load.NewConn(br.api)
				defer c.Close()
				for pb.Next() {
					if st, err := c.Do(req); err != nil || st != 200 {
						b.Errorf("GET: status %d, %v", st, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBrokerDownload measures a 32 MiB attachment download through
// gateway and agent; MB/s is the figure.
func BenchmarkBrokerDownload(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			br := start(b, transport)
			c := load.NewBulkClient()
			url := "http://" + br.api + br.prefix + "/rest/api/3/attachment/content/" + br.attachID
			b.SetBytes(download)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := load.Download(context.Background(), c, url, br.header(), download); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
