// Package gatewayyaml writes the config file of a gateway whose brokers
// and tokens are made on the spot: the trial gateway of
// `oxbroker-gateway dev`, the gateways of the benchmarks (bench/rig), of
// the end-to-end tests (e2e) and of the live package tests
// (packaging/live).
package gatewayyaml

import (
	"fmt"
	"strings"

	"github.com/oxsecurity/oxbroker/gateway"
)

// Config is what varies between those gateways.
type Config struct {
	// Comment is the file's first line, after "# "; "" writes none.
	Comment string
	// Tunnel, API and Admin are the listen addresses; Admin "" turns the
	// admin listener off. Internal is listen.internal, "" for none.
	Tunnel, API, Admin, Internal string
	CertFile, KeyFile            string // tls.cert_file and tls.key_file
	Brokers                      []Broker
	// LogLevel is log.level; "" leaves the default.
	LogLevel string
	// More is YAML appended at the end: more top-level keys, such as
	// registry: and cluster:.
	More string
}

// Broker is one broker of the gateway, with its tokens in clear: the file
// holds only their hashes.
type Broker struct {
	ID              string
	Token           string
	ConnectorTokens []string
}

// YAML returns the config file. Addresses and paths are written as
// double-quoted strings, so that any path can be given.
func YAML(c Config) []byte {
	var b strings.Builder
	if c.Comment != "" {
		fmt.Fprintf(&b, "# %s\n", c.Comment)
	}
	fmt.Fprintf(&b, "listen:\n  tunnel: %q\n  api: %q\n  admin: %q\n", c.Tunnel, c.API, c.Admin)
	if c.Internal != "" {
		fmt.Fprintf(&b, "  internal: %q\n", c.Internal)
	}
	fmt.Fprintf(&b, "tls:\n  cert_file: %q\n  key_file: %q\n", c.CertFile, c.KeyFile)
	b.WriteString("brokers:\n")
	for _, br := range c.Brokers {
		hashes := make([]string, len(br.ConnectorTokens))
		for i, t := range br.ConnectorTokens {
			hashes[i] = gateway.HashToken(t)
		}
		fmt.Fprintf(&b, "  - id: %s\n    token: %s\n    connector_tokens: [%s]\n",
			br.ID, gateway.HashToken(br.Token), strings.Join(hashes, ", "))
	}
	if c.LogLevel != "" {
		fmt.Fprintf(&b, "log:\n  level: %s\n", c.LogLevel)
	}
	b.WriteString(c.More)
	return []byte(b.String())
}
