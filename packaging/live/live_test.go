//go:build linux

package live

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/internal/testwait"
)

// maxExposure is the highest systemd-analyze security score a running
// unit may have (the offline score of packaging's TestUnitsSecurity).
const maxExposure = 4.5

// TestLive boots a Debian with systemd and, in one boot, goes through
// the agent's package, the bare binary as a service (with an encrypted
// credential), the watchdog, and the gateway's package. Each step fails
// when the promise it names breaks; the steps run in order, as each
// starts from what the one before left.
func TestLive(t *testing.T) {
	if os.Getenv("OXBROKER_LIVE") != "1" {
		t.Skip("the live systemd tests run with OXBROKER_LIVE=1 (make live-test), as root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("make live-test needs root: it debootstraps and boots a container")
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "dpkg-deb", "debootstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing; make live-test installs it (scripts/need.sh)", tool)
		}
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// The script prints the path on stdout, and debootstrap's progress on
	// stderr, which goes to the test's output as it comes.
	script := exec.Command("./scripts/live-rootfs.sh")
	script.Dir, script.Stderr = repo, os.Stderr
	out, err := script.Output()
	if err != nil {
		t.Fatalf("scripts/live-rootfs.sh: %v", err)
	}
	rootfs := strings.TrimSpace(string(out))
	t.Logf("root file system %s ready in %.0fs", rootfs, time.Since(start).Seconds())
	rel := build(t, repo)
	h := newHost(t)
	bins := t.TempDir()
	h.gw = h.startGateway(t, extract(t, rel.deb("oxbroker-gateway", rel.new), "/usr/bin/oxbroker-gateway", bins))
	c := boot(t, rootfs)
	c.putFile(t, "gateway-ca.pem", h.Certs.CACert)
	for _, v := range []string{rel.old, rel.new} {
		for _, pkg := range []string{"oxbroker", "oxbroker-gateway"} {
			c.putFile(t, filepath.Base(rel.deb(pkg, v)), rel.deb(pkg, v))
		}
	}
	c.putFile(t, "oxbroker-livetest", rel.livetest)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"agent-deb", func(t *testing.T) { agentDeb(t, c, h, rel) }},
		{"service-install", func(t *testing.T) { serviceInstall(t, c, h, rel) }},
		{"watchdog", func(t *testing.T) { watchdog(t, c, h) }},
		{"gateway-deb", func(t *testing.T) {
			gatewayDeb(t, c, h, rel, extract(t, rel.deb("oxbroker", rel.new), "/usr/bin/oxbroker", bins))
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("step %s failed; the later steps start from its end, so they do not run", s.name)
		}
	}
	t.Logf("the live test took %.0fs", time.Since(start).Seconds())
}

// agentDeb: the agent's .deb, as docs/operations.md 2.1 installs it.
func agentDeb(t *testing.T, c *container, h *host, rel *release) {
	deb := func(v string) string { return "/srv/live/" + filepath.Base(rel.deb("oxbroker", v)) }

	// Install: enabled, not started, the config a commented example.
	c.sh(t, "dpkg -i "+deb(rel.old))
	if got := strings.TrimSpace(c.sh(t, "systemctl is-enabled oxbroker")); got != "enabled" {
		t.Fatalf("after install: is-enabled %q, want enabled", got)
	}
	if got := c.active("oxbroker"); got != "inactive" {
		t.Fatalf("after install: is-active %q, want inactive (the package must not start an unconfigured agent)", got)
	}

	// The tokens and the config, as 2.1 says.
	c.shIn(t, h.BrokerToken+"\n", "umask 077 && cat > /etc/oxbroker/broker.token")
	c.shIn(t, h.JiraToken+"\n", "umask 077 && cat > /etc/oxbroker/jira.token")
	c.sh(t, "chgrp oxbroker /etc/oxbroker/broker.token /etc/oxbroker/jira.token && chmod 0640 /etc/oxbroker/broker.token /etc/oxbroker/jira.token")
	c.sh(t, "install -m 0644 /srv/live/gateway-ca.pem /etc/oxbroker/gateway-ca.pem")
	cfg := h.agentConfig(h.gw.tunnel, "/etc/oxbroker/gateway-ca.pem", "/etc/oxbroker/broker.token", "/etc/oxbroker/jira.token", "/var/lib/oxbroker")
	c.shIn(t, cfg, "cat > /etc/oxbroker/config.yaml") // as sudoedit: the file keeps its owner and mode
	if got := strings.TrimSpace(c.sh(t, "stat -c '%U:%G %a' /etc/oxbroker/config.yaml")); got != "root:oxbroker 640" {
		t.Errorf("config: %s, want root:oxbroker 640", got)
	}
	c.sh(t, "oxbroker config validate --config /etc/oxbroker/config.yaml")
	c.sh(t, "runuser -u oxbroker -- oxbroker check --config /etc/oxbroker/config.yaml")

	// Start: Type=notify, so start returns once a tunnel is up.
	c.sh(t, "systemctl start oxbroker")
	if st := h.broker(t, h.gw); !st.Online {
		t.Fatalf("systemctl start returned before the agent was online: %+v (READY=1 must wait for the first tunnel)", st)
	}
	if got := c.prop(t, "oxbroker", "StatusText"); !strings.Contains(got, "tunnels to the gateway up") {
		t.Errorf("StatusText %q: want the tunnels' state", got)
	}
	h.myself(t, h.gw)
	if score := c.exposure(t, "oxbroker.service"); score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f", score, maxExposure)
	}

	// Reload: the same process and the same sessions.
	pid := c.prop(t, "oxbroker", "MainPID")
	sessions := sessionIDs(h.broker(t, h.gw))
	hups := strings.Count(c.journal(t, "oxbroker"), "SIGHUP: reloading the config")
	c.sh(t, "systemctl reload oxbroker")
	c.waitJournal(t, "oxbroker", "SIGHUP: reloading the config", hups+1)
	c.waitJournal(t, "oxbroker", "config reloaded", 1)
	if got := c.prop(t, "oxbroker", "MainPID"); got != pid {
		t.Errorf("reload: MainPID %s, want %s (the same process)", got, pid)
	}
	if got := sessionIDs(h.broker(t, h.gw)); got != sessions {
		t.Errorf("reload: sessions %s, want %s (kept)", got, sessions)
	}
	h.myself(t, h.gw)

	// Stop: a call in flight finishes, then the broker is offline.
	h.Jira.SetDelay(2 * time.Second)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, _, err := h.tryCall(h.gw, "GET", "/b/acme/jira/rest/api/3/myself")
		done <- result{code, err}
	}()
	testwait.For(t, 30*time.Second, "the slow call to reach Jira", func() bool { return h.inflight.Load() > 0 })
	c.sh(t, "systemctl stop oxbroker")
	h.Jira.SetDelay(0)
	if r := <-done; r.err != nil || r.code != http.StatusOK {
		t.Errorf("the call in flight during stop: %d %v, want 200 (drained)", r.code, r.err)
	}
	c.waitJournal(t, "oxbroker", "oxbroker stopped", 1)
	if st := h.broker(t, h.gw); st.Online {
		t.Errorf("after stop the broker is still online: %+v", st)
	}
	if code, body := h.call(t, h.gw, "GET", "/b/acme/jira/rest/api/3/myself"); code != brokerhttp.BrokerOffline.Status() || !strings.Contains(body, string(brokerhttp.BrokerOffline)) {
		t.Errorf("a call after stop: %d %s, want %d %s", code, body, brokerhttp.BrokerOffline.Status(), brokerhttp.BrokerOffline)
	}
	if got := c.prop(t, "oxbroker", "NRestarts"); got != "0" {
		t.Errorf("NRestarts %s, want 0", got)
	}

	// Upgrade while running: restarted, on the new version, config kept.
	c.sh(t, "systemctl start oxbroker")
	pid = c.prop(t, "oxbroker", "MainPID")
	before := c.sh(t, "sha256sum /etc/oxbroker/config.yaml")
	c.sh(t, "dpkg -i "+deb(rel.new))
	if got := c.active("oxbroker"); got != "active" {
		t.Fatalf("after the upgrade: is-active %q, want active", got)
	}
	if got := c.prop(t, "oxbroker", "MainPID"); got == pid {
		t.Errorf("after the upgrade: MainPID %s, want a new process", got)
	}
	if got := c.sh(t, "oxbroker version"); !strings.Contains(got, rel.new) {
		t.Errorf("after the upgrade: %q, want version %s", got, rel.new)
	}
	if got := c.sh(t, "sha256sum /etc/oxbroker/config.yaml"); got != before {
		t.Error("the upgrade changed /etc/oxbroker/config.yaml")
	}
	testwait.For(t, 30*time.Second, "the upgraded agent's session", func() bool {
		st := h.broker(t, h.gw)
		return len(st.Sessions) > 0 && st.Sessions[0].Version == rel.new
	})
	h.myself(t, h.gw)
	c.noSandboxDenial(t, "oxbroker")

	// Purge: stopped, unit, config and state gone; the tokens stay.
	c.sh(t, "dpkg --purge oxbroker")
	if got := c.active("oxbroker"); got == "active" {
		t.Errorf("after purge: is-active %q", got)
	}
	c.sh(t, `for f in /usr/lib/systemd/system/oxbroker.service /etc/oxbroker/config.yaml /var/lib/oxbroker /usr/bin/oxbroker; do
		if [ -e "$f" ]; then echo "$f survived the purge"; exit 1; fi
	done
	test -f /etc/oxbroker/jira.token`)
	testwait.For(t, 30*time.Second, "the broker to go offline", func() bool { return !h.broker(t, h.gw).Online })
}

// serviceInstall: the bare binary as docs/operations.md 2.4 installs it,
// with the Jira token an encrypted systemd credential.
func serviceInstall(t *testing.T, c *container, h *host, rel *release) {
	deb := "/srv/live/" + filepath.Base(rel.deb("oxbroker", rel.new))
	c.sh(t, `dpkg-deb --fsys-tarfile `+deb+` | tar -xO ./usr/bin/oxbroker > /srv/live/oxbroker
		install -m 0755 /srv/live/oxbroker /usr/local/bin/oxbroker
		id oxbroker >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin oxbroker
		install -d -m 0750 -o root -g oxbroker /etc/oxbroker
		chown oxbroker:oxbroker /etc/oxbroker/broker.token && chmod 0600 /etc/oxbroker/broker.token
		rm -f /etc/oxbroker/jira.token`)
	// The Jira token is only ever on disk encrypted, with this machine's key.
	c.shIn(t, h.JiraToken, `install -d -m 0700 /etc/credstore.encrypted
		systemd-creds encrypt --name=jira-token - /etc/credstore.encrypted/jira-token`)
	cfg := h.agentConfig(h.gw.tunnel, "/etc/oxbroker/gateway-ca.pem", "/etc/oxbroker/broker.token", "${CREDENTIALS_DIRECTORY}/jira-token", "/var/lib/oxbroker")
	// An admin listener, for service status to ask the agent how it is.
	cfg = strings.Replace(cfg, `listen: ""`, fmt.Sprintf("listen: %q", freeAddr(t, false)), 1)
	c.shIn(t, cfg, "umask 027 && cat > /etc/oxbroker/config.yaml && chgrp oxbroker /etc/oxbroker/config.yaml")
	if out, err := c.exec("", "grep", "-rl", h.JiraToken, "/etc", "/var/lib", "/srv"); err == nil {
		t.Fatalf("the Jira token is on disk in clear:\n%s", out)
	}

	out := c.sh(t, "oxbroker service install --config /etc/oxbroker/config.yaml --credential jira-token=/etc/credstore.encrypted/jira-token")
	t.Logf("service install:\n%s", out)
	unit := c.sh(t, "systemctl cat oxbroker")
	for _, want := range []string{"LoadCredentialEncrypted=jira-token:/etc/credstore.encrypted/jira-token", "User=oxbroker", "Type=notify", "WatchdogSec="} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit has no %q:\n%s", want, unit)
		}
	}
	c.sh(t, "oxbroker service start")
	if st := h.broker(t, h.gw); !st.Online {
		t.Fatalf("service start returned before the agent was online: %+v", st)
	}
	if got := c.sh(t, "oxbroker service status"); got != "installed: yes\nrunning, connected\n" {
		t.Errorf("service status: %q, want installed, running and connected", got)
	}
	h.myself(t, h.gw) // the stand-in takes only the Jira token: it came from the credential
	if score := c.exposure(t, "oxbroker.service"); score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f", score, maxExposure)
	}
	c.sh(t, "oxbroker service stop")
	if out, err := c.exec("", "oxbroker", "service", "status"); err == nil || out != "installed: yes\nstopped\n" {
		t.Errorf("service status after stop: %q (%v), want stopped and exit 1", out, err)
	}
	testwait.For(t, 30*time.Second, "the broker to go offline", func() bool { return !h.broker(t, h.gw).Online })
	c.noSandboxDenial(t, "oxbroker")
	c.sh(t, "oxbroker service uninstall")
	if out, _ := c.exec("", "oxbroker", "service", "status"); out != "installed: no\nstopped\n" {
		t.Errorf("service status after uninstall: %q, want not installed", out)
	}
	c.sh(t, "test ! -e /etc/systemd/system/oxbroker.service")
}

// watchdog: an agent that hangs (the livetest build's fault switch) is
// restarted by systemd's watchdog.
func watchdog(t *testing.T, c *container, h *host) {
	c.sh(t, `install -m 0755 /srv/live/oxbroker-livetest /usr/local/bin/oxbroker
		oxbroker service install --config /etc/oxbroker/config.yaml --credential jira-token=/etc/credstore.encrypted/jira-token
		mkdir -p /etc/systemd/system/oxbroker.service.d
		printf '[Service]\nEnvironment=OXBROKER_LIVETEST_FAULT=hang\nWatchdogSec=3s\n' > /etc/systemd/system/oxbroker.service.d/livetest.conf
		systemctl daemon-reload
		systemctl start oxbroker`)
	pid := c.prop(t, "oxbroker", "MainPID")
	testwait.For(t, 90*time.Second, "a watchdog restart", func() bool {
		return c.prop(t, "oxbroker", "NRestarts") != "0" && c.prop(t, "oxbroker", "MainPID") != pid
	})
	j := c.journal(t, "oxbroker")
	for _, line := range strings.Split(j, "\n") {
		if strings.Contains(line, "atchdog") || strings.Contains(line, "livetest fault") {
			t.Log(line)
		}
	}
	for _, want := range []string{"livetest fault: hanging the agent on purpose", "Watchdog timeout", "Failed with result 'watchdog'"} {
		if !strings.Contains(j, want) {
			t.Errorf("the journal has no %q", want)
		}
	}
	c.sh(t, `oxbroker service uninstall
		rm -rf /etc/systemd/system/oxbroker.service.d /usr/local/bin/oxbroker
		systemctl daemon-reload`)
}

// gatewayDeb: the gateway's .deb (docs/operations.md 8.1) in the
// container, with an agent on the host connecting to it.
func gatewayDeb(t *testing.T, c *container, h *host, rel *release, agentBin string) {
	deb := func(v string) string { return "/srv/live/" + filepath.Base(rel.deb("oxbroker-gateway", v)) }
	c.sh(t, "dpkg -i "+deb(rel.old))
	if got := c.active("oxbroker-gateway"); got != "inactive" {
		t.Fatalf("after install: is-active %q, want inactive", got)
	}
	c.putFile(t, "tls.crt", h.Certs.Cert)
	c.putFile(t, "tls.key", h.Certs.Key)
	c.sh(t, `install -m 0640 -o root -g oxbroker-gateway /srv/live/tls.crt /etc/oxbroker-gateway/tls.crt
		install -m 0640 -o root -g oxbroker-gateway /srv/live/tls.key /etc/oxbroker-gateway/tls.key`)
	g := &gatewayProc{tunnel: freeAddr(t, true), api: freeAddr(t, false), admin: freeAddr(t, false)}
	c.shIn(t, h.gatewayConfig(g.tunnel, g.api, g.admin, "/etc/oxbroker-gateway"), "cat > /etc/oxbroker-gateway/config.yaml")

	// Type=notify: start returns once the listeners are up.
	c.sh(t, "systemctl start oxbroker-gateway")
	resp, err := http.Get("http://" + g.admin + "/readyz")
	if err != nil {
		t.Fatalf("systemctl start returned before the listeners were up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz right after start: %d, want 200", resp.StatusCode)
	}
	if score := c.exposure(t, "oxbroker-gateway.service"); score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f", score, maxExposure)
	}

	agentLog := h.startAgent(t, agentBin, g)
	testwait.For(t, 60*time.Second, "the host agent online at the container's gateway", func() bool {
		_, body, err := h.tryCall(g, "GET", "/v1/brokers/acme")
		return err == nil && strings.Contains(body, `"online":true`)
	})
	h.myself(t, g)

	// Upgrade while running: restarted, config kept, the agent back.
	pid := c.prop(t, "oxbroker-gateway", "MainPID")
	before := c.sh(t, "sha256sum /etc/oxbroker-gateway/config.yaml")
	c.sh(t, "dpkg -i "+deb(rel.new))
	if got := c.prop(t, "oxbroker-gateway", "MainPID"); got == pid || c.active("oxbroker-gateway") != "active" {
		t.Errorf("after the upgrade: MainPID %s (was %s), %s; want a new, active process", got, pid, c.active("oxbroker-gateway"))
	}
	if got := c.sh(t, "oxbroker-gateway version"); !strings.Contains(got, rel.new) {
		t.Errorf("after the upgrade: %q, want %s", got, rel.new)
	}
	if got := c.sh(t, "sha256sum /etc/oxbroker-gateway/config.yaml"); got != before {
		t.Error("the upgrade changed /etc/oxbroker-gateway/config.yaml")
	}
	testwait.For(t, 60*time.Second, "the host agent back after the upgrade", func() bool {
		code, _, err := h.tryCall(g, "GET", "/b/acme/jira/rest/api/3/myself")
		return err == nil && code == http.StatusOK
	})

	// Stop: the gateway drains and tells the agent; then nothing listens.
	c.sh(t, "systemctl stop oxbroker-gateway")
	c.waitJournal(t, "oxbroker-gateway", "gateway stopped", 1)
	if _, _, err := h.tryCall(g, "GET", "/v1/brokers/acme"); err == nil {
		t.Error("the API still answers after stop")
	}
	testwait.For(t, 30*time.Second, "the host agent to notice", func() bool {
		return strings.Contains(agentLog.String(), "reconnecting")
	})
	c.noSandboxDenial(t, "oxbroker-gateway")
	if got := c.prop(t, "oxbroker-gateway", "NRestarts"); got != "0" {
		t.Errorf("NRestarts %s, want 0", got)
	}

	c.sh(t, "dpkg --purge oxbroker-gateway")
	c.sh(t, `for f in /usr/lib/systemd/system/oxbroker-gateway.service /etc/oxbroker-gateway/config.yaml /usr/bin/oxbroker-gateway; do
		if [ -e "$f" ]; then echo "$f survived the purge"; exit 1; fi
	done`)
}
