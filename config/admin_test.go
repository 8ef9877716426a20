package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bcrypt hash of "secret" (cost 4, as htpasswd -nbB -C 4 makes).
const testBcrypt = "$2y$04$vj2Zb8OQeNtUNMpF7T1x8.FBTm2YqhOs3AT5U7R1rM/v9fNV1pb8K"

// TestAdminPageAccess: a status page on a listener that is not loopback
// only is refused without admin.auth (for both programs), and each auth
// type asks for its own keys.
func TestAdminPageAccess(t *testing.T) {
	tests := []struct {
		name, admin string
		want        string // "" = valid; else a substring of the error
	}{
		{"loopback without auth", "admin: {listen: '127.0.0.1:9108'}", ""},
		{"localhost without auth", "admin: {listen: 'localhost:9108'}", ""},
		{"ipv6 loopback without auth", "admin: {listen: '[::1]:9108'}", ""},
		{"all interfaces without auth", "admin: {listen: ':9108'}", "admin.listen: :9108 is not a loopback address"},
		{"an address without auth", "admin: {listen: '10.1.2.3:9108'}", "admin.listen: 10.1.2.3:9108 is not a loopback address"},
		{"a name without auth", "admin: {listen: 'host.example:9108'}", "is not a loopback address"},
		{"all interfaces, page off", "admin: {listen: ':9108', page: false}", ""},
		{"all interfaces with bearer", "admin: {listen: ':9108', auth: {type: bearer, token: 0123456789abcdef}}", ""},
		{"all interfaces with basic", "admin: {listen: ':9108', auth: {type: basic, username: ops, password_hash: '" + testBcrypt + "'}}", ""},
		{"bearer without token", "admin: {auth: {type: bearer}}", "admin.auth.token: required"},
		{"bearer token too short", "admin: {auth: {type: bearer, token: short}}", "admin.auth.token: must be at least 16"},
		{"basic without hash", "admin: {auth: {type: basic, username: ops}}", "admin.auth.password_hash: required"},
		{"basic with a plain password", "admin: {auth: {type: basic, username: ops, password_hash: secret}}", "must be a bcrypt hash"},
		{"basic user with colon", "admin: {auth: {type: basic, username: 'a:b', password_hash: '" + testBcrypt + "'}}", "admin.auth.username"},
		{"keys without a type", "admin: {auth: {token: 0123456789abcdef}}", "admin.auth.type: required"},
		{"unknown type", "admin: {auth: {type: digest}}", "admin.auth.type: must be one of"},
		{"a host with a port", "admin: {hosts: ['broker.example:9108']}", "admin.hosts[0]"},
		{"hosts", "admin: {hosts: [broker.example, 10.0.0.5]}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAgent([]byte(minimalAgent+tt.admin), lookup(map[string]string{"T": "t", "H": "h"}))
			check(t, err, tt.want)
			// The gateway's admin: has the same keys; its address is listen.admin.
			gw := gatewayWithAdmin(tt.admin)
			_, err = ParseGateway([]byte(gw), lookup(nil))
			check(t, err, strings.ReplaceAll(tt.want, "admin.listen:", "listen.admin:"))
		})
	}
}

func check(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("got %v, want no error", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("got %v, want an error with %q", err, want)
	}
}

// gatewayWithAdmin turns an agent's admin: line into a gateway config:
// listen moves to listen.admin.
func gatewayWithAdmin(admin string) string {
	listen := "127.0.0.1:9109"
	if i := strings.Index(admin, "listen: '"); i >= 0 {
		rest := admin[i+len("listen: '"):]
		listen = rest[:strings.Index(rest, "'")]
		admin = strings.Replace(admin, "listen: '"+listen+"'", "", 1)
		admin = strings.Replace(strings.Replace(admin, "{, ", "{", 1), "{}", "{page: true}", 1)
	}
	return "listen: {admin: '" + listen + "'}\ntls: {cert_file: c, key_file: k}\nbrokers:\n  - id: b\n    token: sha256:" +
		strings.Repeat("0", 64) + "\n" + admin + "\n"
}

// TestAdminTokenFile: admin.auth.token_file is read like every token file.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(f, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := ParseAgent([]byte(minimalAgent+"admin: {auth: {type: bearer, token_file: "+f+"}}"), lookup(map[string]string{"T": "t", "H": "h"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Admin.Auth.Token.Reveal(); got != "0123456789abcdef0123" {
		t.Errorf("agent token: got %q", got)
	}
	g, err := ParseGateway([]byte(gatewayWithAdmin("admin: {auth: {type: bearer, token_file: "+f+"}}")), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Admin.Auth.Token.Reveal(); got != "0123456789abcdef0123" {
		t.Errorf("gateway token: got %q", got)
	}
}
