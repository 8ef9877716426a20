package packaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Signer Authenticode-signs Windows executables with osslsigncode.
type Signer struct {
	// Cert is the code-signing certificate, with its chain, in PEM or DER
	// (SIGN_CERT); Key its private key (SIGN_KEY).
	Cert, Key string
	// PassFile, when set, holds the key's password (SIGN_PASS_FILE).
	PassFile string
	// TimestampURL, when set, is an RFC 3161 time-stamping server
	// (SIGN_TIMESTAMP_URL): a time-stamped signature stays valid after the
	// certificate expires.
	TimestampURL string
}

// SignerFromEnv returns the Signer that SIGN_CERT, SIGN_KEY,
// SIGN_PASS_FILE and SIGN_TIMESTAMP_URL describe, or nil when neither
// SIGN_CERT nor SIGN_KEY is set.
func SignerFromEnv(getenv func(string) string) (*Signer, error) {
	s := &Signer{Cert: getenv("SIGN_CERT"), Key: getenv("SIGN_KEY"),
		PassFile: getenv("SIGN_PASS_FILE"), TimestampURL: getenv("SIGN_TIMESTAMP_URL")}
	switch {
	case s.Cert == "" && s.Key == "":
		return nil, nil
	case s.Cert == "" || s.Key == "":
		return nil, errors.New("set both SIGN_CERT and SIGN_KEY to sign the Windows executables, or neither")
	}
	for _, f := range []string{s.Cert, s.Key, s.PassFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
	}
	return s, nil
}

// Sign signs the executable at path in place, with a SHA-256 digest.
func (s *Signer) Sign(ctx context.Context, path string) error {
	tmp := path + ".signed"
	args := []string{"sign", "-certs", s.Cert, "-key", s.Key, "-h", "sha256",
		"-n", "OX Broker", "-i", "https://www.ox.security/"}
	if s.PassFile != "" {
		args = append(args, "-readpass", s.PassFile)
	}
	if s.TimestampURL != "" {
		args = append(args, "-ts", s.TimestampURL)
	}
	args = append(args, "-in", path, "-out", tmp)
	if err := run(exec.CommandContext(ctx, "osslsigncode", args...)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sign %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
