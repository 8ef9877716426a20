package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oxsecurity/oxbroker/config"
)

// expiryConfig is an agent config whose sites carry the given
// auth.expires values ("" for none); caFile is gateway.ca_file.
func expiryConfig(t *testing.T, dir, caFile string, expires ...string) *config.Agent {
	t.Helper()
	yaml := fmt.Sprintf("broker: {id: acme, token: b}\nstate_dir: %q\ngateway: {address: \"127.0.0.1:9\", ca_file: %q}\nsites:\n",
		filepath.Join(dir, "state"), caFile)
	for i, exp := range expires {
		yaml += fmt.Sprintf("  - name: site%d\n    url: http://127.0.0.1:9\n    auth: {type: bearer, token: t", i)
		if exp != "" {
			yaml += ", expires: " + exp
		}
		yaml += "}\n"
	}
	cfg, err := config.ParseAgent([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	return cfg
}

// expirySeries lists the sites the token-expiry gauge has a series for.
func expirySeries(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sites []string
	for _, mf := range mfs {
		if mf.GetName() != "oxbroker_site_token_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "site" {
					sites = append(sites, l.GetValue())
				}
			}
		}
	}
	slices.Sort(sites)
	return sites
}

// TestTokenExpiryGaugeFollowsReload: after a reload removes a site or its
// auth.expires, the gauge has no series for it (an alert on it stops);
// a reload that is refused changes nothing.
func TestTokenExpiryGaugeFollowsReload(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	a, err := New(context.Background(), expiryConfig(t, dir, "", "2031-01-01", "2031-02-01", ""), Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.router.Load().close()
	if got, want := expirySeries(t, reg), []string{"site0", "site1"}; !slices.Equal(got, want) {
		t.Fatalf("at start: got series %v, want %v", got, want)
	}

	// site1 loses its expiry date and site0 is removed: a new site0 takes
	// the place of the old site1 without one.
	if err := a.Reload(context.Background(), expiryConfig(t, dir, "", "", "2031-03-01")); err != nil {
		t.Fatal(err)
	}
	if got, want := expirySeries(t, reg), []string{"site1"}; !slices.Equal(got, want) {
		t.Fatalf("after reload: got series %v, want %v", got, want)
	}

	// A reload refused (its gateway CA file does not exist) leaves the
	// gauge as the running config has it.
	refused := expiryConfig(t, dir, filepath.Join(dir, "missing-ca.pem"), "2031-04-01", "")
	if err := a.Reload(context.Background(), refused); err == nil {
		t.Fatal("a reload with a missing gateway.ca_file was taken")
	}
	if got, want := expirySeries(t, reg), []string{"site1"}; !slices.Equal(got, want) {
		t.Fatalf("after a refused reload: got series %v, want %v", got, want)
	}
}
