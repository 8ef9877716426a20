package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
)

// credential is one systemd credential the unit loads for the agent
// (LoadCredential=, or LoadCredentialEncrypted= for a file made by
// systemd-creds encrypt). The config names it as
// ${CREDENTIALS_DIRECTORY}/<Name>.
type credential struct {
	Name, Path string
	Encrypted  bool
}

// credentialsEnv is the variable systemd sets to the folder that holds a
// service's credentials.
const credentialsEnv = "CREDENTIALS_DIRECTORY"

// parseCredential reads one --credential NAME=FILE.
func parseCredential(s string) (credential, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return credential{}, fmt.Errorf("--credential %q: want NAME=FILE, e.g. jira-token=/etc/credstore.encrypted/jira-token", s)
	}
	// systemd wants a name that is a file name; the unit and the config
	// are simpler with a plain one.
	if name == "." || name == ".." || strings.ContainsFunc(name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-", r))
	}) {
		return credential{}, fmt.Errorf("--credential %q: the name may hold letters, digits, '.', '_' and '-' only", s)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return credential{}, fmt.Errorf("--credential %s: %w", name, err)
	}
	return credential{Name: name, Path: abs}, nil
}

// looksEncrypted reports whether data is a credential systemd-creds
// encrypt made: base64 (its output) or raw, it starts with the header of
// systemd's sealed credentials, a 16-byte sealing id then four
// little-endian sizes (key, block, IV, tag), whose tag is AES-GCM's 16
// bytes. A token that happened to decode to such a header would need
// that 32-bit field to be 16 and three others small.
func looksEncrypted(data []byte) bool {
	raw := data
	if dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(data)), "")); err == nil {
		raw = dec
	}
	if len(raw) < 32 {
		return false
	}
	le := func(i int) uint32 { return binary.LittleEndian.Uint32(raw[i : i+4]) }
	key, block, iv, tag := le(16), le(20), le(24), le(28)
	return tag == 16 && iv >= 1 && iv <= 64 && block >= 1 && block <= 64 && key <= 1<<20
}
