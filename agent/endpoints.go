package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// endpoint is one place a connection can dial: an IP address that a
// configured gateway address resolved to or, through a proxy, the
// configured address itself.
type endpoint struct {
	addr string // host:port dialled
	name string // the configured gateway address it comes from
	host string // the name the gateway's certificate must hold: name's host
	// secondary marks an address of the other IP family than the first
	// address of its name.
	secondary bool
}

// lookupTimeout bounds the resolution of the gateway addresses before a dial.
const lookupTimeout = 10 * time.Second

// resolve returns where the gateway can be reached now. Without a proxy
// every configured name is resolved afresh: DNS may have changed since the
// last dial (a rolling restart). A name's addresses of the other family
// than its first one are marked secondary: the system resolver lists
// first the family this host reaches best (RFC 6724), and a name's IPv4
// and IPv6 addresses usually reach the same gateways, so the other family
// is for when the first fails. Through a proxy the proxy resolves names,
// so the endpoints are the configured addresses themselves.
//
// Names that do not resolve are left out and reported in err, which is
// also set when nothing is left.
func resolve(ctx context.Context, lookup func(context.Context, string, string) ([]netip.Addr, error),
	names []string, viaProxy bool) ([]endpoint, error) {
	eps := make([][]endpoint, len(names))
	errs := make([]error, len(names))
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, name := range names {
		host, port, err := net.SplitHostPort(name)
		if err != nil {
			errs[i] = fmt.Errorf("gateway address %q: %w", name, err)
			continue
		}
		if ip, err := netip.ParseAddr(host); viaProxy || err == nil {
			addr := name
			if err == nil {
				addr = net.JoinHostPort(ip.String(), port) // one spelling per address
			}
			eps[i] = []endpoint{{addr: addr, name: name, host: host}}
			continue
		}
		wg.Go(func() {
			ips, err := lookup(ctx, "ip", host)
			if err == nil && len(ips) == 0 {
				err = errors.New("no address")
			}
			if err != nil {
				errs[i] = fmt.Errorf("resolve gateway address %s: %w", name, err)
				return
			}
			v4 := ips[0].Unmap().Is4()
			for _, ip := range ips {
				ip = ip.Unmap()
				eps[i] = append(eps[i], endpoint{addr: net.JoinHostPort(ip.String(), port), name: name, host: host,
					secondary: ip.Is4() != v4})
			}
		})
	}
	wg.Wait()
	var all []endpoint
	seen := map[string]bool{}
	for _, list := range eps {
		for _, ep := range list {
			if !seen[ep.addr] { // two names for one address: the first one's
				seen[ep.addr] = true
				all = append(all, ep)
			}
		}
	}
	err := errors.Join(errs...)
	if len(all) == 0 && err == nil {
		err = errors.New("no gateway address")
	}
	return all, err
}

// spread knows where the agent's connections are, so that each dial goes
// where the fewest of the others are: a gateway that stops or fails takes
// as few of the agent's sessions with it as the endpoints allow.
type spread struct {
	gauge *prometheus.GaugeVec // oxbroker_tunnel_gateway_connections

	mu     sync.Mutex     // guards the maps
	byAddr map[string]int // connections dialling or up, by endpoint address
	byName map[string]int // the same, by configured address
	up     map[string]int // sessions up (draining ones too), by endpoint address
}

func newSpread(gauge *prometheus.GaugeVec) *spread {
	return &spread{gauge: gauge, byAddr: map[string]int{}, byName: map[string]int{}, up: map[string]int{}}
}

// pick chooses the endpoint a connection dials next and counts the
// connection there until release. In order of preference: not last, the
// endpoint the connection has just left; not one it tried since its last
// session; not a secondary address; the configured address with the
// fewest connections, then the endpoint with the fewest; then any of the
// best at random, so that a fleet of agents spreads over the endpoints
// rather than all taking the first. eps must not be empty.
func (s *spread) pick(eps []endpoint, last string, tried map[string]bool) endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	// rank orders endpoints by those preferences: lower is better, the
	// first field that differs decides.
	rank := func(ep endpoint) [5]int {
		return [5]int{oneIf(ep.addr == last), oneIf(tried[ep.addr]), oneIf(ep.secondary), s.byName[ep.name], s.byAddr[ep.addr]}
	}
	var best []endpoint
	var bestRank [5]int
	for _, ep := range eps {
		r := rank(ep)
		switch {
		case len(best) == 0 || slices.Compare(r[:], bestRank[:]) < 0:
			best, bestRank = append(best[:0], ep), r
		case r == bestRank:
			best = append(best, ep)
		}
	}
	ep := best[rand.N(len(best))]
	s.byAddr[ep.addr]++
	s.byName[ep.name]++
	return ep
}

// release undoes pick once the connection's session has ended (or
// started draining: a draining session takes no new requests).
func (s *spread) release(ep endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dec(s.byAddr, ep.addr)
	dec(s.byName, ep.name)
}

// sessionUp and sessionDown count the sessions up at each endpoint for
// the oxbroker_tunnel_gateway_connections gauge; an endpoint no session
// uses any more leaves the gauge, so that the addresses of gateways long
// gone do not stay there at 0.
func (s *spread) sessionUp(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up[addr]++
	s.gauge.WithLabelValues(addr).Set(float64(s.up[addr]))
}

func (s *spread) sessionDown(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dec(s.up, addr) == 0 {
		s.gauge.DeleteLabelValues(addr)
		return
	}
	s.gauge.WithLabelValues(addr).Set(float64(s.up[addr]))
}

// dec decrements m[k], deleting the key at zero, and returns what is left.
func dec(m map[string]int, k string) int {
	m[k]--
	if m[k] <= 0 {
		delete(m, k)
		return 0
	}
	return m[k]
}

// oneIf is 1 when cond holds, else 0: a preference's place in a rank.
func oneIf(cond bool) int {
	if cond {
		return 1
	}
	return 0
}
