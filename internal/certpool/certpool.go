// Package certpool builds the root certificates the agent verifies its
// peers with: the system's roots plus the CA certificates of a ca_file
// setting. The gateway's certificate (gateway.ca_file), Jira's
// (sites[].tls.ca_file) and `oxbroker check` all use it, so that the check
// trusts exactly what the agent trusts.
package certpool

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// ErrNoCertificate is returned when a CA file holds no PEM certificate.
var ErrNoCertificate = errors.New("no PEM certificate")

// Load returns the system's root certificates plus those of the PEM file
// at path, for a tls.Config's RootCAs. An empty path returns nil, which
// crypto/tls reads as the system's roots. setting names the config key of
// path in errors ("gateway.ca_file"). When the system's roots cannot be
// loaded, only the file's certificates are trusted, and log (if not nil)
// says so.
func Load(setting, path string, log *slog.Logger) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		if log != nil {
			log.Warn("cannot load the system root certificates; trusting only "+setting, "ca_file", path, "err", err)
		}
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %w in %s", setting, ErrNoCertificate, path)
	}
	return pool, nil
}
