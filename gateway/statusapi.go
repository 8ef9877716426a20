package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/oxsecurity/oxbroker/admin/ui"
	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/internal/window"
)

// The gateway's status page and its API (docs/design.md, "Status pages"),
// on its admin listener behind package admin's guard:
//
//	GET /            the page, rendered on the server from what the API says
//	GET /api/status  GatewayStatus
//
// It shows brokers, never a token or token hash, and calls by their
// outcome, never a path.

// GatewayStatus is the answer of GET /api/status.
type GatewayStatus struct {
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	Reason        string    `json:"reason,omitempty"`
	// Replica is this replica's id in the cluster; "" with the memory
	// registry.
	Replica  string         `json:"replica,omitempty"`
	Registry RegistryHealth `json:"registry"`
	Brokers  []BrokerView   `json:"brokers"`
}

// RegistryHealth is the state of the session registry (registry.type).
type RegistryHealth struct {
	Type string `json:"type"`
	// URL is registry.url with its password hidden; Advertise this
	// replica's internal URL (redis only).
	URL       string `json:"url,omitempty"`
	Advertise string `json:"advertise,omitempty"`
	Healthy   bool   `json:"healthy"`
	// Problems say what is wrong, one sentence each.
	Problems []string `json:"problems"`
	// BrokersDefined is the number of brokers read from Redis.
	BrokersDefined int `json:"brokers_defined"`
}

// BrokerView is one broker on the page: where its sessions are, what its
// agents serve, and its calls of the last hour.
type BrokerView struct {
	BrokerStatus
	// Source is where the broker is defined: config or redis.
	Source string `json:"source"`
	// Versions are the agent versions of its sessions.
	Versions []string `json:"versions"`
	// Checks are the last remote check of each site that had one, by
	// site name.
	Checks map[string]*RemoteCheck `json:"checks"`
	Calls  BrokerCalls             `json:"calls_last_hour"`
}

// BrokerCalls counts a broker's connector calls of the last hour by
// outcome: the broker's error code when the broker answered itself, else
// the status class of Jira's answer (2xx…5xx), or "canceled" when the
// connector went away. Forwarded are those another replica carried.
type BrokerCalls struct {
	Total     int            `json:"total"`
	ByOutcome map[string]int `json:"by_outcome"`
	Forwarded int            `json:"forwarded"`
}

// RemoteCheck is the last remote check of a site (POST
// /v1/brokers/{broker}/sites/{site}/check): the agent's report, as the
// agent sent it (agent/diag's SiteReport), with when it came.
type RemoteCheck struct {
	At        time.Time              `json:"at"`
	RequestID string                 `json:"request_id"`
	OK        bool                   `json:"ok"`
	Results   []brokerhttp.CheckStep `json:"results"`
}

// statusBoard is what the page shows beyond the registry: when the
// gateway started, the brokers' calls and their sites' last checks. It
// holds known brokers only (of the config or Redis), and sites their
// agents announced, so strangers cannot grow it.
type statusBoard struct {
	started time.Time

	mu     sync.Mutex // guards calls and checks
	calls  map[string]*window.Minutes[brokerMinute]
	checks map[string]map[string]*RemoteCheck // broker -> site -> last check
}

// brokerMinute is one minute of a broker's calls.
type brokerMinute struct {
	outcomes  map[string]int
	forwarded int
}

func newStatusBoard() *statusBoard {
	return &statusBoard{started: time.Now(), calls: make(map[string]*window.Minutes[brokerMinute]),
		checks: make(map[string]map[string]*RemoteCheck)}
}

// observeCall counts a connector call of a known broker.
func (b *statusBoard) observeCall(broker string, status int, code string, forwarded bool) {
	outcome := code
	if outcome == "" {
		outcome = classOf(status)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.calls[broker]
	if w == nil {
		w = window.New[brokerMinute](60)
		b.calls[broker] = w
	}
	m := w.At(time.Now())
	if m.outcomes == nil {
		m.outcomes = make(map[string]int)
	}
	m.outcomes[outcome]++
	if forwarded {
		m.forwarded++
	}
}

// classOf is the outcome of a call the broker did not answer itself:
// the status class of Jira's answer, or canceled when the connector went
// away (499, the gateway's mark for it, or no status at all).
func classOf(status int) string {
	if status >= 200 && status < 600 && status != 499 {
		return strconv.Itoa(status/100) + "xx"
	}
	return "canceled"
}

// maxCheckText bounds each text of a check step the agent sent.
const maxCheckText = 1000

// recordCheck keeps the agent's report of a remote check of site, if it
// is one; what it cannot read is left out.
func (b *statusBoard) recordCheck(broker, site, requestID string, report []byte) {
	var rc RemoteCheck
	if json.Unmarshal(report, &rc) != nil {
		return
	}
	rc.At, rc.RequestID = time.Now().UTC(), requestID
	for i := range rc.Results {
		s := &rc.Results[i]
		s.Name, s.Status = clip.String(s.Name, 32), clip.String(s.Status, 8)
		s.Detail, s.Cause, s.Fix = clip.String(s.Detail, maxCheckText), clip.String(s.Cause, maxCheckText), clip.String(s.Fix, maxCheckText)
	}
	rc.Results = rc.Results[:min(len(rc.Results), 32)]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.checks[broker] == nil {
		b.checks[broker] = make(map[string]*RemoteCheck)
	}
	b.checks[broker][site] = &rc
}

func (b *statusBoard) brokerCalls(broker string) BrokerCalls {
	c := BrokerCalls{ByOutcome: map[string]int{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.calls[broker]; w != nil {
		w.Each(time.Now(), func(_ int, m *brokerMinute) {
			for k, n := range m.outcomes {
				c.ByOutcome[k] += n
				c.Total += n
			}
			c.Forwarded += m.forwarded
		})
	}
	return c
}

func (b *statusBoard) siteChecks(broker string) map[string]*RemoteCheck {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.checks[broker])
}

// StatusHandler serves the status page and its API. Put it behind
// admin.WithPage, which guards it.
func (g *Gateway) StatusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { ui.Render(w, "gateway", g.Status(r.Context())) })
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) { ui.WriteJSON(w, g.Status(r.Context())) })
	mux.Handle("GET "+ui.AssetPrefix, ui.Assets())
	return mux
}

// Status returns what the gateway says of itself on its status page.
func (g *Gateway) Status(ctx context.Context) GatewayStatus {
	ready, why := g.Ready()
	st := GatewayStatus{
		Version: g.opts.Version, Started: g.board.started.UTC(), UptimeSeconds: int64(time.Since(g.board.started).Seconds()),
		Ready: ready, Reason: why, Registry: g.registryHealth(), Brokers: []BrokerView{},
	}
	if g.cluster != nil {
		st.Replica = g.cluster.id
	}
	sources := map[string]string{}
	for id := range g.brokers {
		sources[id] = "config"
	}
	if r, ok := g.shared.(*redisRegistry); ok {
		if set := r.defined.Load(); set != nil {
			for id := range set.byID {
				if sources[id] == "" {
					sources[id] = "redis"
				}
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sources)) {
		v := BrokerView{BrokerStatus: g.brokerStatus(ctx, id), Source: sources[id], Versions: []string{},
			Checks: g.board.siteChecks(id), Calls: g.board.brokerCalls(id)}
		if v.Checks == nil {
			v.Checks = map[string]*RemoteCheck{}
		}
		for _, s := range v.Sessions {
			if !slices.Contains(v.Versions, s.Version) {
				v.Versions = append(v.Versions, s.Version)
			}
		}
		st.Brokers = append(st.Brokers, v)
	}
	return st
}

// registryHealth says how the session registry is doing.
func (g *Gateway) registryHealth() RegistryHealth {
	r, ok := g.shared.(*redisRegistry)
	if !ok {
		return RegistryHealth{Type: "memory", Healthy: true, Problems: []string{}}
	}
	h := RegistryHealth{Type: "redis", URL: r.url, Advertise: r.advertise, Problems: []string{}}
	r.mu.Lock()
	down := r.down
	r.mu.Unlock()
	if down {
		h.Problems = append(h.Problems, "The last write to Redis failed: the other replicas may not find this replica's sessions.")
	}
	if set := r.defined.Load(); set == nil {
		h.Problems = append(h.Problems, "The brokers defined in Redis have not been read yet.")
	} else {
		h.BrokersDefined = len(set.byID)
	}
	h.Healthy = len(h.Problems) == 0
	return h
}
