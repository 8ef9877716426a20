package rig

import (
	"testing"

	"github.com/oxsecurity/oxbroker/config"
)

// TestConfigsLoad checks that the configs the rig writes load, with the
// addresses they were given: `make bench` would otherwise fail only once
// it reaches the part that uses them.
func TestConfigsLoad(t *testing.T) {
	r, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addrs := GatewayAddrs{Tunnel: "127.0.0.1:1", API: "127.0.0.1:2", Admin: "127.0.0.1:3"}
	gw, err := config.ParseGateway(r.GatewayConfig(addrs, "warn"), nil)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if gw.Listen.Tunnel != addrs.Tunnel || gw.Log.Level != "warn" || len(gw.Brokers) != 1 || gw.Brokers[0].ID != BrokerID {
		t.Errorf("gateway: got %+v", gw)
	}
	rep := Replica{GatewayAddrs: addrs, Internal: "127.0.0.1:4", RedisURL: "redis://127.0.0.1:5/0", SecretFile: "/tmp/secret"}
	gw, err = config.ParseGateway(r.ReplicaConfig(rep, "warn"), nil)
	if err != nil {
		t.Fatalf("replica: %v", err)
	}
	if gw.Listen.Internal != rep.Internal || gw.Registry.Advertise != "http://"+rep.Internal || gw.Registry.URL != rep.RedisURL ||
		gw.Cluster.SecretFile != rep.SecretFile || gw.Listen.API != addrs.API {
		t.Errorf("replica: got %+v", gw)
	}
	agent, err := r.AgentConfig(Agent{Transport: "tcp", Tunnel: addrs.Tunnel, JiraURL: "http://127.0.0.1:6", Level: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.ParseAgent(agent, func(name string) (string, bool) { return "jira-token", name == "JIRA_TOKEN" }); err != nil {
		t.Fatalf("agent: %v", err)
	}
}
