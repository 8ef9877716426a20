package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's Prometheus metrics (docs/design.md, "Metrics").
type metrics struct {
	sessions     *prometheus.GaugeVec
	requests     *prometheus.CounterVec
	duration     prometheus.Histogram
	authFailures prometheus.Counter
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
	}
	reg.MustRegister(m.sessions, m.requests, m.duration, m.authFailures)
	for _, t := range []string{"quic", "tcp"} {
		m.sessions.WithLabelValues(t)
	}
	return m
}
