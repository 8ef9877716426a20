package agent

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/proxy"
	"github.com/oxsecurity/oxbroker/tunnel"
)

// metrics are the agent's Prometheus metrics (docs/design.md, "Metrics").
type metrics struct {
	tunnels    *prometheus.GaugeVec
	gateways   *prometheus.GaugeVec
	reconnects prometheus.Counter
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	denied     *prometheus.CounterVec
	expiry     *prometheus.GaugeVec
	links      *prometheus.CounterVec
	reflected  *prometheus.CounterVec
	limits     *prometheus.CounterVec

	calls *callLog // the recent calls and each site's traffic, for the status page (calls.go)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: newCallLog(),
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxbroker_tunnel_connections",
			Help: "Tunnel sessions to the gateway that are up, by transport.",
		}, []string{"transport"}),
		gateways: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxbroker_tunnel_gateway_connections",
			Help: "Tunnel sessions to the gateway that are up, by the address dialled (IP:port, or host:port through a proxy).",
		}, []string{"gateway"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oxbroker_tunnel_reconnects_total",
			Help: "Times a tunnel connection was dialled again after it ended or failed.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_requests_total",
			Help: "Requests served, by site and HTTP status code (Jira's, or the broker's own).",
		}, []string{"site", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oxbroker_request_duration_seconds",
			Help:    "Time from a request's arrival on the tunnel to the end of its response.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"site"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_requests_denied_total",
			Help: "Requests refused before reaching Jira (allowlist, bad path, too large), by site.",
		}, []string{"site"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxbroker_site_token_expiry_timestamp_seconds",
			Help: "When the site's Jira token expires (auth.expires), as a Unix time.",
		}, []string{"site"}),
		links: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_links_rewritten_total",
			Help: "Links to Jira's REST API in Jira's answers rewritten to the gateway's public URL, by site.",
		}, []string{"site"}),
		reflected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_credentials_removed_total",
			Help: "Times the site's Jira credential was found in Jira's answers and replaced before they left, by site.",
		}, []string{"site"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_tunnel_limits_total",
			Help: "Tunnel sessions closed because the gateway went over a limit, by limit: pings, streams, stream_ids (tunnel/spec.md, \"Limits\"), control (a bad control frame).",
		}, []string{"limit"}),
	}
	reg.MustRegister(m.tunnels, m.gateways, m.reconnects, m.requests, m.duration, m.denied, m.expiry, m.links, m.reflected, m.limits)
	for _, l := range []string{tunnel.LimitPings, tunnel.LimitStreams, tunnel.LimitStreamIDs, limitControl} {
		m.limits.WithLabelValues(l)
	}
	for _, t := range []string{"quic", "tcp"} {
		m.tunnels.WithLabelValues(t) // show zero rather than nothing
	}
	return m
}

var (
	_ proxy.Observer       = (*metrics)(nil)
	_ proxy.FilterObserver = (*metrics)(nil)
)

// ObserveRequest records one finished request.
func (m *metrics) ObserveRequest(site string, status int, code brokerhttp.Code, d time.Duration) {
	m.requests.WithLabelValues(site, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(site).Observe(d.Seconds())
	switch code {
	case brokerhttp.PathNotAllowed, brokerhttp.BadRequest, brokerhttp.TooLarge:
		m.denied.WithLabelValues(site).Inc()
	}
}

// ObserveFiltered records what the proxy changed in one answer.
func (m *metrics) ObserveFiltered(site string, links, credentials int) {
	if links > 0 {
		m.links.WithLabelValues(site).Add(float64(links))
	}
	if credentials > 0 {
		m.reflected.WithLabelValues(site).Add(float64(credentials))
	}
}
