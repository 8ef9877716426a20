package gatewayyaml

import (
	"reflect"
	"testing"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway"
)

// TestYAMLLoads checks that the file loads as the config it describes,
// with only the tokens' hashes in it.
func TestYAMLLoads(t *testing.T) {
	c := Config{
		Comment:  `Written by a test: "quoted"`,
		Tunnel:   "127.0.0.1:8443",
		API:      "127.0.0.1:8080",
		Admin:    "",
		Internal: "127.0.0.1:9090",
		CertFile: `C:\certs\gateway "a".crt`,
		KeyFile:  "/tmp/with space/gateway.key",
		Brokers: []Broker{
			{ID: "acme", Token: "broker-token", ConnectorTokens: []string{"c1", "c2"}},
			{ID: "other", Token: "other-token", ConnectorTokens: []string{"c3"}},
		},
		LogLevel: "debug",
		More:     "registry:\n  type: memory\n",
	}
	got, err := config.ParseGateway(YAML(c), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, YAML(c))
	}
	wantListen := config.GatewayListen{Tunnel: c.Tunnel, API: c.API, Admin: "", Internal: c.Internal}
	if got.Listen != wantListen {
		t.Errorf("got listen %+v, want %+v", got.Listen, wantListen)
	}
	if got.TLS.CertFile != c.CertFile || got.TLS.KeyFile != c.KeyFile {
		t.Errorf("got tls %+v, want %q and %q", got.TLS, c.CertFile, c.KeyFile)
	}
	wantBrokers := []config.BrokerEntry{
		{ID: "acme", Token: gateway.HashToken("broker-token"), ConnectorTokens: []string{gateway.HashToken("c1"), gateway.HashToken("c2")}},
		{ID: "other", Token: gateway.HashToken("other-token"), ConnectorTokens: []string{gateway.HashToken("c3")}},
	}
	if !reflect.DeepEqual(got.Brokers, wantBrokers) {
		t.Errorf("got brokers %+v, want %+v", got.Brokers, wantBrokers)
	}
	if got.Log.Level != "debug" || got.Registry.Type != "memory" {
		t.Errorf("got log level %q and registry type %q, want debug and memory", got.Log.Level, got.Registry.Type)
	}
}
