package frp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oxsecurity/oxbroker/internal/golden"
)

func configs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	s, err := ServerConfig(Server{Bind: "127.0.0.1:7000", VhostHTTP: "127.0.0.1:7080", Token: "frp-token", LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	out["frps.toml"] = s
	for _, p := range Paths {
		c, err := ClientConfig(Client{Path: p, Server: "127.0.0.1:7000", Token: "frp-token", Local: "127.0.0.1:8080",
			Remote: "127.0.0.1:7001", Domain: "127.0.0.1", SetAuth: "Bearer jira-token", LogLevel: "info"})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out["frpc-"+p+".toml"] = c
	}
	return out
}

// TestConfigGolden compares the rendered configs with testdata/; run
// with -update to rewrite them after a deliberate change.
func TestConfigGolden(t *testing.T) {
	for name, got := range configs(t) {
		golden.Check(t, filepath.Join("testdata", name), got)
	}
}

// TestConfigSays checks what the benchmark relies on in each config, so
// that a golden file rewritten by mistake cannot hide it.
func TestConfigSays(t *testing.T) {
	c := configs(t)
	for name, want := range map[string][]string{
		"frps.toml":      {`bindAddr = "127.0.0.1"`, "bindPort = 7000", "quicBindPort = 7000", "vhostHTTPPort = 7080", `auth.token = "frp-token"`},
		"frpc-tcp.toml":  {`transport.protocol = "tcp"`, "transport.tls.enable = true", `type = "tcp"`, "remotePort = 7001", "localPort = 8080"},
		"frpc-quic.toml": {`transport.protocol = "quic"`, `type = "tcp"`, "remotePort = 7001", "serverPort = 7000"},
		"frpc-http.toml": {`transport.protocol = "tcp"`, `type = "http"`, `customDomains = ["127.0.0.1"]`, `requestHeaders.set.Authorization = "Bearer jira-token"`},
	} {
		for _, w := range want {
			if !strings.Contains(string(c[name]), w+"\n") {
				t.Errorf("%s lacks %q:\n%s", name, w, c[name])
			}
		}
	}
	for _, bad := range []string{"jira-token"} {
		for _, name := range []string{"frpc-tcp.toml", "frpc-quic.toml", "frps.toml"} {
			if strings.Contains(string(c[name]), bad) {
				t.Errorf("%s holds the Jira token: on the tcp paths the caller holds it", name)
			}
		}
	}
}

func TestConfigRefuses(t *testing.T) {
	for name, c := range map[string]Client{
		"unknown path":   {Path: "kcp", Server: "127.0.0.1:7000", Local: "127.0.0.1:8080", Remote: "127.0.0.1:7001"},
		"no remote port": {Path: PathTCP, Server: "127.0.0.1:7000", Local: "127.0.0.1:8080", Remote: "127.0.0.1:0"},
		"http, no auth":  {Path: PathHTTP, Server: "127.0.0.1:7000", Local: "127.0.0.1:8080", Domain: "127.0.0.1"},
		"no server port": {Path: PathTCP, Server: "127.0.0.1", Local: "127.0.0.1:8080", Remote: "127.0.0.1:7001"},
	} {
		if b, err := ClientConfig(c); err == nil {
			t.Errorf("%s: got a config, want an error:\n%s", name, b)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:     `"plain"`,
		`a"b\c`:     `"a\"b\\c"`,
		"line\nend": `"line\u000Aend"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q): got %s, want %s", in, got, want)
		}
	}
}

// TestConfigVerify has frps and frpc check the rendered configs
// themselves (`frps verify`, `frpc verify`), with the binaries of the
// cache; it skips when `make bench` has not built them yet.
func TestConfigVerify(t *testing.T) {
	b := Build{}.withDefaults()
	dir := filepath.Join(b.CacheDir, "frp-"+b.Version, "bin")
	bins := Binaries{Frps: filepath.Join(dir, "frps"), Frpc: filepath.Join(dir, "frpc")}
	if !isFile(bins.Frps) || !isFile(bins.Frpc) {
		t.Skipf("frp %s is not built in %s (make bench builds it)", b.Version, dir)
	}
	tmp := t.TempDir()
	for name, cfg := range configs(t) {
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		bin := bins.Frpc
		if name == "frps.toml" {
			bin = bins.Frps
		}
		out, err := exec.Command(bin, "verify", "-c", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "syntax is ok") {
			t.Errorf("%s verify -c %s: %v: %s", filepath.Base(bin), name, err, out)
		}
	}
}
