package diag

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/certpool"
	"github.com/oxsecurity/oxbroker/internal/netfail"
	"github.com/oxsecurity/oxbroker/proxy"
)

// certExpiryWarning is how long before its end Jira's certificate is
// warned about.
const certExpiryWarning = 14 * 24 * time.Hour

// checkSiteTLS runs the TLS handshake with Jira over conn, with the TLS
// config the site's proxy uses (proxy.TLSConfig).
func checkSiteTLS(ctx context.Context, conn net.Conn, site config.Site, t Target, log *slog.Logger) outcome {
	conf, err := proxy.TLSConfig(site.TLS, log)
	switch {
	case errors.Is(err, certpool.ErrNoCertificate):
		return failed("tls.ca_file", fmt.Sprintf("tls.ca_file (%s) holds no PEM certificate.", site.TLS.CAFile),
			"Set tls.ca_file to a PEM file holding the CA that signed Jira's certificate.")
	case err != nil:
		return failed("tls.ca_file", sentence(fmt.Sprintf("Cannot read tls.ca_file: %s", netfail.RootCause(err))),
			"Set tls.ca_file to a readable PEM file holding the CA that signed Jira's certificate.")
	}
	conf.ServerName = t.host
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return failedWith("TLS with "+t.Addr, t.Handshake(err))
	}
	st := tc.ConnectionState()
	summary := certSummary(st)
	if site.TLS.InsecureSkipVerify {
		verdict := "the certificate would also pass verification"
		if err := verifyPeer(st, conf.RootCAs, t.host); err != nil {
			verdict = "the certificate would fail verification: " + trimPeriod(netfail.RootCause(err).Error())
		}
		return warned(fmt.Sprintf("verification off (insecure_skip_verify); %s; %s", summary, verdict),
			"tls.insecure_skip_verify is on, so the agent accepts any certificate for Jira and a machine in the path could read the Jira token.",
			"Set tls.ca_file to the CA that signed Jira's certificate and remove insecure_skip_verify.")
	}
	leaf := st.PeerCertificates[0]
	if left := time.Until(leaf.NotAfter); left < certExpiryWarning {
		return warned(summary, fmt.Sprintf("Jira's certificate expires on %s.", leaf.NotAfter.Format(time.DateOnly)),
			"Renew Jira's certificate before then.")
	}
	return passed("%s, verified (system roots%s)", summary, ifSet(site.TLS.CAFile, " + tls.ca_file "+site.TLS.CAFile))
}

// verifyPeer verifies the peer's chain as the handshake would have with
// roots (nil: the system's).
func verifyPeer(st tls.ConnectionState, roots *x509.CertPool, name string) error {
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name})
	return err
}

// certSummary describes the peer's certificate for a Detail.
func certSummary(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return tls.VersionName(st.Version)
	}
	c := st.PeerCertificates[0]
	issuer := c.Issuer.CommonName
	if issuer == "" {
		issuer = c.Issuer.String()
	}
	return fmt.Sprintf("%s, certificate for %s issued by %q, valid until %s", tls.VersionName(st.Version),
		certNames(c), issuer, c.NotAfter.Format(time.DateOnly))
}

// certNames lists the names a certificate holds, four at most.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no name"
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) > 4 {
		names = append(names[:4], "…")
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}
