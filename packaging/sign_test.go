package packaging

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSign signs the release's oxbroker.exe and .msi with a throwaway
// CA's code-signing certificate, as "make package" does when SIGN_CERT and
// SIGN_KEY are set, and has osslsigncode verify the signature.
func TestSign(t *testing.T) {
	d := distOrSkip(t)
	for _, name := range []string{"oxbroker.exe", "oxbroker.msi"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, name)
			var data []byte
			if name == "oxbroker.exe" {
				data = unzipFile(t, d.path("oxbroker_%s_windows_amd64.zip", d.version), "oxbroker.exe")
			} else {
				var err error
				if data, err = os.ReadFile(d.path("oxbroker_%s_windows_amd64.msi", d.version)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			testSign(t, dir, file)
		})
	}
}

func testSign(t *testing.T, dir, exe string) {
	tool := need(t, "osslsigncode")
	caFile, certFile, keyFile := throwawayCodeSigning(t, dir)
	verify := func() (string, error) {
		out, err := exec.Command(tool, "verify", "-CAfile", caFile, "-in", exe).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err == nil {
		t.Fatalf("the release's %s verifies before it is signed: a test that cannot fail\n%s", filepath.Base(exe), out)
	}

	env := map[string]string{"SIGN_CERT": certFile, "SIGN_KEY": keyFile}
	s, err := SignerFromEnv(func(k string) string { return env[k] })
	if err != nil || s == nil {
		t.Fatalf("SignerFromEnv: %v, %v", s, err)
	}
	if err := s.Sign(context.Background(), exe); err != nil {
		t.Fatal(err)
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, "Signature verification: ok") {
		t.Fatalf("osslsigncode verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, "CN=OX Broker test code signing") {
		t.Errorf("the signer is not the test certificate:\n%s", out)
	}
}

func TestSignerFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env     map[string]string
		signs   bool
		wantErr string
	}{
		{env: nil},
		{env: map[string]string{"SIGN_CERT": "signing.crt"}, wantErr: "set both"},
		{env: map[string]string{"SIGN_CERT": "/nonexistent.crt", "SIGN_KEY": "/nonexistent.key"}, wantErr: "no such file"},
	} {
		s, err := SignerFromEnv(func(k string) string { return tt.env[k] })
		if (s != nil) != tt.signs || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: got %v, %v; want a signer %v, error %q", tt.env, s, err, tt.signs, tt.wantErr)
		}
	}
}

// throwawayCodeSigning writes a CA certificate, and a code-signing
// certificate it issued with its key, as PEM files in dir.
func throwawayCodeSigning(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "OX Broker test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "OX Broker test code signing"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, block := range blocks {
			b = append(b, pem.EncodeToMemory(block)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = write("ca.crt", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certFile = write("signing.crt", &pem.Block{Type: "CERTIFICATE", Bytes: leafDER}, &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	keyFile = write("signing.key", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return caFile, certFile, keyFile
}
