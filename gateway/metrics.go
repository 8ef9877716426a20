package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/tunnel"
)

// metrics are the gateway's Prometheus metrics (docs/design.md, "Metrics").
type metrics struct {
	sessions     *prometheus.GaugeVec
	requests     *prometheus.CounterVec
	duration     prometheus.Histogram
	authFailures prometheus.Counter
	authLimited  *prometheus.CounterVec
	limits       *prometheus.CounterVec

	// Replicas (registry.type redis).
	forwarded      *prometheus.CounterVec
	internal       *prometheus.CounterVec
	registryErrors *prometheus.CounterVec
	sessionWaits   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxbroker_gateway_sessions",
			Help: "Authenticated agent sessions, by transport.",
		}, []string{"transport"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_requests_total",
			Help: "Connector requests, by broker and HTTP status code.",
		}, []string{"broker", "code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "oxbroker_gateway_request_duration_seconds",
			Help:    "Time from a connector request's arrival to the end of its response.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oxbroker_gateway_auth_failures_total",
			Help: "Failed authentications: agents with a wrong broker id or token, connectors with a wrong token.",
		}),
		authLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_auth_rate_limited_total",
			Help: "Authentications refused unjudged because their address had failed too often, by listener: api (connectors, 429), tunnel (agents, reject).",
		}, []string{"listener"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_tunnel_limits_total",
			Help: "Agent sessions or connections closed or refused because they went over a limit, by limit: pings, streams, stream_ids, handshakes (tunnel/spec.md, \"Limits\"), unauthenticated, broker_sessions, broker_sites (limits: config), control (a bad control frame).",
		}, []string{"limit"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_forwarded_requests_total",
			Help: "Connector requests sent to another replica, by outcome: ok (it answered), no_session (it had no session any more), unreachable (it could not be reached), refused (it refused the signature), failed (the exchange broke).",
		}, []string{"outcome"}),
		internal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_internal_requests_total",
			Help: "Requests other replicas forwarded to this one's internal listener, by HTTP status code (401: refused).",
		}, []string{"code"}),
		registryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_registry_errors_total",
			Help: "Failed operations on the shared registry (Redis), by operation: publish, withdraw, lookup, brokers (reading them all), broker (reading one, for a hello).",
		}, []string{"op"}),
		sessionWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxbroker_gateway_session_waits_total",
			Help: "Connector requests that found no session of their broker and waited for one, by outcome: found, timeout.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.sessions, m.requests, m.duration, m.authFailures, m.authLimited, m.limits, m.forwarded, m.internal, m.registryErrors, m.sessionWaits)
	for _, t := range []string{"quic", "tcp"} {
		m.sessions.WithLabelValues(t)
	}
	for _, l := range []string{"api", "tunnel"} {
		m.authLimited.WithLabelValues(l)
	}
	for _, o := range []string{"ok", "no_session", "unreachable", "refused", "failed"} {
		m.forwarded.WithLabelValues(o)
	}
	for _, o := range []string{"found", "timeout"} {
		m.sessionWaits.WithLabelValues(o)
	}
	for _, l := range []string{tunnel.LimitPings, tunnel.LimitStreams, tunnel.LimitStreamIDs, tunnel.LimitHandshakes,
		limitUnauthenticated, limitBrokerSessions, limitBrokerSites, limitControl} {
		m.limits.WithLabelValues(l)
	}
	return m
}
