package certpool_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/devcert"
	"github.com/oxsecurity/oxbroker/internal/certpool"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	files, err := devcert.WriteFiles(dir, "gw", "gw.example")
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)

	t.Run("no file: the system's roots", func(t *testing.T) {
		pool, err := certpool.Load("gateway.ca_file", "", log)
		if pool != nil || err != nil {
			t.Errorf("got %v, %v; want nil, nil", pool, err)
		}
	})
	t.Run("the file's CA is trusted", func(t *testing.T) {
		pool, err := certpool.Load("gateway.ca_file", files.CACert, log)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "gw.example"}); err != nil {
			t.Errorf("a certificate of the file's CA: %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := certpool.Load("tls.ca_file", filepath.Join(dir, "missing.pem"), log)
		if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "tls.ca_file: ") {
			t.Errorf("got %v, want a tls.ca_file error that is fs.ErrNotExist", err)
		}
	})
	t.Run("no certificate in the file", func(t *testing.T) {
		_, err := certpool.Load("tls.ca_file", garbage, log)
		if !errors.Is(err, certpool.ErrNoCertificate) || !strings.Contains(err.Error(), garbage) {
			t.Errorf("got %v, want ErrNoCertificate naming %s", err, garbage)
		}
	})
}
