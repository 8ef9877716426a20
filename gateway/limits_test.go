package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway/redistest"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/tunnel"
	"github.com/oxsecurity/oxbroker/tunnel/sessiontest"
	"github.com/oxsecurity/oxbroker/tunnel/streamhttp"
	"github.com/oxsecurity/oxbroker/tunnel/tunneltest"
)

// rawAgent is a rogue agent whose control stream the test writes by hand
// after the handshake, bad frames included.
type rawAgent struct {
	sess tunnel.Session
	st   net.Conn // the control stream
	ctrl *tunnel.Control
}

func (tg *testGateway) rawConnect(t *testing.T, transport string, h tunnel.Hello) (*rawAgent, error) {
	t.Helper()
	s := tg.dial(t, transport)
	st := tunneltest.Open(t, s.OpenStream)
	ctrl := tunnel.NewControl(st)
	if h.Protocol == 0 {
		h.Protocol = tunnel.ProtocolVersion
	}
	if err := ctrl.Send(h); err != nil {
		t.Fatal(err)
	}
	m, err := ctrl.Recv(time.Now().Add(10 * time.Second))
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case tunnel.Welcome:
		return &rawAgent{sess: s, st: st, ctrl: ctrl}, nil
	case tunnel.Reject:
		return nil, &tunnel.RejectError{Reject: m}
	}
	return nil, fmt.Errorf("got %T, want welcome", m)
}

// frame is a control frame written by hand: a length, then the payload.
func frame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func limitCount(t *testing.T, tg *testGateway, limit string) float64 {
	t.Helper()
	var m dto.Metric
	if err := tg.gw.metrics.limits.WithLabelValues(limit).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestBadControlFrameClosesSession: after a bad control frame the gateway
// closes the session at once, with a request still in flight on it (it
// does not take the frame for the end of a drain and wait for the
// request); an unknown message type is ignored and the session goes on.
func TestBadControlFrameClosesSession(t *testing.T) {
	bad := []struct{ name, raw string }{
		{"zero length", "\x00\x00\x00\x00"},
		{"over 1 MiB", "\x00\x10\x00\x01"},
		{"garbage JSON", string(frame(`{"type":"sites","sites":[`))},
		{"goaway with a number for reason", string(frame(`{"type":"goaway","reason":5}`))},
		{"sites that are not a list", string(frame(`{"type":"sites","sites":"jira"}`))},
	}
	for _, tr := range transports {
		for _, c := range bad {
			t.Run(tr+"/"+c.name, func(t *testing.T) {
				tg := startGatewayWith(t, newTestTokens(), func(_ *config.Gateway, o *Options) { o.DrainTimeout = 30 * time.Second })
				a, err := tg.rawConnect(t, tr, tg.hello())
				if err != nil {
					t.Fatal(err)
				}
				// A request that hangs in the agent until the test ends.
				arrived, release := make(chan struct{}, 1), make(chan struct{})
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					<-release
				})}
				var wg sync.WaitGroup
				defer func() { close(release); srv.Close(); wg.Wait() }()
				wg.Go(func() { srv.Serve(streamhttp.Listener(a.sess, streamhttp.MaxConcurrentStreams)) })
				wg.Go(func() { tg.do("GET", "/b/acme/jira/x", tg.acmeConnector, nil, "") })
				<-arrived

				// An unknown type is ignored: a sites message after it is read.
				a.st.Write(frame(`{"type":"from-the-future","x":1}`))
				a.ctrl.Send(tunnel.Sites{Sites: []tunnel.SiteInfo{{Name: "wiki"}}})
				testwait.For(t, 5*time.Second, "the sites after an unknown message", func() bool {
					st := tg.status(t, "acme", tg.acmeConnector)
					return len(st.Sessions) == 1 && len(st.Sessions[0].Sites) == 1 && st.Sessions[0].Sites[0] == "wiki"
				})

				a.st.Write([]byte(c.raw))
				testwait.Recv(t, 5*time.Second, "the session to close after a bad control frame, with a request in flight", a.sess.Done())
				if n := limitCount(t, tg, limitControl); n != 1 {
					t.Errorf("oxbroker_gateway_tunnel_limits_total{limit=control}: got %v, want 1", n)
				}
				if !strings.Contains(tg.logs.String(), "agent sent a bad control frame") {
					t.Error("the bad frame was not logged")
				}
			})
		}
	}
}

// TestSitesFloodIsLoggedOnce: a rogue agent with a valid token sends
// 2,000 sites messages, one with 1,000 invalid names and one with more
// sites than limits.sites_per_broker. The log gets a handful of lines
// with counts, not one per message or per name; the list over the limit
// is refused whole and the session keeps its sites.
func TestSitesFloodIsLoggedOnce(t *testing.T) {
	tg := startGatewayWith(t, newTestTokens(), func(c *config.Gateway, _ *Options) { c.Limits.SitesPerBroker = 2000 })
	a, err := tg.agent(t, tunnel.TransportTCP, tg.hello(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		a.Loop.Send(tunnel.Sites{Sites: []tunnel.SiteInfo{{Name: fmt.Sprint("site-", i)}}})
	}
	invalid := make([]tunnel.SiteInfo, 1000)
	for i := range invalid {
		invalid[i] = tunnel.SiteInfo{Name: fmt.Sprint("Not_A_Name_", i)}
	}
	a.Loop.Send(tunnel.Sites{Sites: append(invalid, tunnel.SiteInfo{Name: "kept"})})
	a.Loop.Send(tunnel.Sites{Sites: make([]tunnel.SiteInfo, 2001)})
	a.Loop.Send(tunnel.Sites{Sites: []tunnel.SiteInfo{{Name: "last"}, {Name: "Bad Name"}}})
	testwait.For(t, 10*time.Second, "the last sites message", func() bool {
		st := tg.status(t, "acme", tg.acmeConnector)
		return len(st.Sessions) == 1 && len(st.Sessions[0].Sites) == 1 && st.Sessions[0].Sites[0] == "last"
	})
	tg.gw.lines.Flush() // as Serve does once per interval
	log := tg.logs.String()
	for _, c := range []struct {
		line string
		max  int
	}{
		{"agent sites updated", linesBurst + 1},
		{"agent announced sites with invalid names", 3},
		{"agent announced more sites than limits.sites_per_broker", 1},
	} {
		n := strings.Count(log, c.line)
		t.Logf("%q: %d lines", c.line, n)
		if n == 0 || n > c.max {
			t.Errorf("%q: %d lines, want 1 to %d", c.line, n, c.max)
		}
	}
	if !strings.Contains(log, "invalid=1000") {
		t.Error("the line about invalid names does not count them")
	}
	if !strings.Contains(log, "suppressed=") {
		t.Error("no line says how many were held back")
	}
	if n := limitCount(t, tg, limitBrokerSites); n != 1 {
		t.Errorf("limits_total{limit=broker_sites}: got %v, want 1", n)
	}
}

// TestBrokerLimits: limits.sessions_per_broker and sites_per_broker
// refuse the session over them with reject over_limit, which says which
// limit; another broker is not affected.
func TestBrokerLimits(t *testing.T) {
	tg := startGatewayWith(t, newTestTokens(), func(c *config.Gateway, _ *Options) {
		c.Limits.SessionsPerBroker = 3
		c.Limits.SitesPerBroker = 10
	})
	var first *sessiontest.Agent
	for i := range 3 {
		a, err := tg.agent(t, tunnel.TransportTCP, tg.hello(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = a
		}
	}
	// A session that said goaway is routed to no more, but lives on (the
	// agent has not half-closed): it still counts.
	first.Loop.Send(tunnel.GoAway{Reason: "draining, forever"})
	testwait.For(t, 5*time.Second, "the draining session out of the status", func() bool {
		return len(tg.status(t, "acme", tg.acmeConnector).Sessions) == 2
	})
	var rej *tunnel.RejectError
	_, err := tg.agent(t, tunnel.TransportQUIC, tg.hello(), nil)
	if !errors.As(err, &rej) || rej.Reject.Code != tunnel.RejectOverLimit || !strings.Contains(rej.Reject.Message, "sessions_per_broker") {
		t.Errorf("a 4th session of acme: got %v, want reject over_limit naming sessions_per_broker", err)
	}
	other := tg.hello()
	other.BrokerID, other.Token = "other", tg.otherBroker
	if _, err := tg.agent(t, tunnel.TransportTCP, other, nil); err != nil {
		t.Errorf("a session of another broker: %v", err)
	}
	many := other
	many.Sites = make([]tunnel.SiteInfo, 11)
	for i := range many.Sites {
		many.Sites[i].Name = fmt.Sprint("s", i)
	}
	_, err = tg.agent(t, tunnel.TransportTCP, many, nil)
	if !errors.As(err, &rej) || rej.Reject.Code != tunnel.RejectOverLimit || !strings.Contains(rej.Reject.Message, "sites_per_broker") {
		t.Errorf("a hello with 11 sites: got %v, want reject over_limit naming sites_per_broker", err)
	}
	if n := limitCount(t, tg, limitBrokerSessions); n != 1 {
		t.Errorf("limits_total{limit=broker_sessions}: got %v, want 1", n)
	}
}

// TestUnauthenticatedLimit: sessions that say nothing hold at most
// limits.unauthenticated_sessions slots; the session over it is closed at
// once (not after the 10 s hello timeout), and once the silent ones are
// gone an agent is served.
func TestUnauthenticatedLimit(t *testing.T) {
	tg := startGatewayWith(t, newTestTokens(), func(c *config.Gateway, _ *Options) { c.Limits.UnauthenticatedSessions = 3 })
	var silent []tunnel.Session
	for i := range 6 {
		silent = append(silent, tg.dial(t, transports[i%2]))
	}
	testwait.For(t, 5*time.Second, "3 sessions over the limit counted", func() bool {
		return limitCount(t, tg, limitUnauthenticated) == 3
	})
	// Closed at once, well before the 10 s hello timeout.
	testwait.For(t, 5*time.Second, "3 silent sessions closed", func() bool {
		closed := 0
		for _, s := range silent {
			select {
			case <-s.Done():
				closed++
			default:
			}
		}
		return closed == 3
	})
	for _, s := range silent {
		s.Close()
	}
	if _, err := tg.agent(t, tunnel.TransportTCP, tg.hello(), nil); err != nil {
		t.Errorf("an agent after the silent sessions left: %v", err)
	}
}

// TestTunnelLimitLoggedOnce: 30 peers that flood pings before any hello
// are each closed and counted, and logged in a few lines, not 30.
func TestTunnelLimitLoggedOnce(t *testing.T) {
	tg := startGateway(t)
	var pings []byte
	for i := range 100 {
		h := make([]byte, 12)
		h[1], h[3] = 2, 1 // ping, SYN
		binary.BigEndian.PutUint32(h[8:], uint32(i))
		pings = append(pings, h...)
	}
	const peers = 30
	for range peers {
		c, err := tls.Dial("tcp", tg.tunnel, &tls.Config{RootCAs: tg.roots, ServerName: "127.0.0.1", NextProtos: []string{tunnel.ALPN}})
		if err != nil {
			t.Fatal(err)
		}
		c.Write(pings)
		c.Close()
	}
	testwait.For(t, 10*time.Second, "every flood counted", func() bool { return limitCount(t, tg, tunnel.LimitPings) == peers })
	if n := strings.Count(tg.logs.String(), "tunnel peer went over a limit"); n == 0 || n > linesBurst+1 {
		t.Errorf("%d lines for %d floods, want 1 to %d", n, peers, linesBurst+1)
	}
}

// TestSitesFloodIsNoRedisWriteStorm: a session whose sites change 5,000
// times a second (a sites flood) costs Redis a write per writeGap, not
// one per change.
func TestSitesFloodIsNoRedisWriteStorm(t *testing.T) {
	srv := redistest.Start(t)
	r := newTestReplica(t, srv.URL(), "a")
	rdb := newRedisClient(t, srv.URL())
	sets := func() int {
		info, err := rdb.Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_set:calls="); ok {
				n := 0
				fmt.Sscan(strings.SplitN(rest, ",", 2)[0], &n)
				return n
			}
		}
		return 0
	}
	s := fakeSession("s1", "acme", "jira")
	r.publish(s)
	testwait.For(t, 2*time.Second, "the session published", func() bool { return sets() > 0 })
	before, start := sets(), time.Now()
	const changes = 5000
	for i := range changes {
		s.setSites([]tunnel.SiteInfo{{Name: fmt.Sprint("site-", i)}})
		r.publish(s)
		time.Sleep(200 * time.Microsecond) // a flood spread as it comes off the network
	}
	took := time.Since(start)
	writes := sets() - before
	// One per writeGap, and the refreshes (every testRefresh), give or take two.
	bound := int(took/writeGap) + int(took/testRefresh) + 2
	t.Logf("%d changes in %s: %d SETs (bound %d)", changes, took.Round(time.Millisecond), writes, bound)
	if writes > bound {
		t.Errorf("%d changes made %d Redis writes, want at most %d", changes, writes, bound)
	}
}
