package agentsim_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/bench/agentsim"
	"github.com/oxsecurity/oxbroker/bench/rig"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/gateway"
	"github.com/oxsecurity/oxbroker/internal/testwait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startGateway runs a gateway on addrs until the returned stop is called.
func startGateway(t *testing.T, r *rig.Rig, addrs rig.GatewayAddrs) (stop func()) {
	t.Helper()
	cfg, err := config.ParseGateway(r.GatewayConfig(addrs, "info"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(ctx) }()
	return func() { cancel(); <-done }
}

// TestFleetComesBack grows a fleet, restarts its gateway and waits for
// every agent to be back, on both transports.
func TestFleetComesBack(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			r, err := rig.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			addrs, err := rig.FreeGatewayAddrs()
			if err != nil {
				t.Fatal(err)
			}
			addrs.Admin = ""
			// Only the tunnel port must survive the restart; a fixed API
			// port would only add a free-then-bind race with other tests.
			addrs.API = "127.0.0.1:0"
			stop := startGateway(t, r, addrs)
			d, err := r.Dialer(transport)
			if err != nil {
				t.Fatal(err)
			}
			f := agentsim.New(agentsim.Config{Dialer: d, Addr: addrs.Tunnel, Hello: r.Hello("http://jira.invalid")})
			defer f.Close()
			ctx := context.Background()
			if err := f.Grow(ctx, 6, 3, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			f.Shrink(2)
			if got := f.Len(); got != 4 {
				t.Errorf("after Shrink(2) of 6: got %d agents, want 4", got)
			}
			if got := f.UpSince(time.Time{}); got != 4 {
				t.Errorf("before the restart: UpSince(zero) = %d, want 4", got)
			}
			stopped := time.Now()
			stop()
			// No gateway listens: no session can have been welcomed since.
			if got := f.UpSince(stopped); got != 0 {
				t.Errorf("gateway stopped: UpSince(stop) = %d, want 0", got)
			}
			stop = startGateway(t, r, addrs)
			defer stop()
			testwait.For(t, 20*time.Second, "4 agents back after the restart", func() bool { return f.UpSince(stopped) == 4 })
			if got := f.Up(); got != 4 {
				t.Errorf("after the restart: Up() = %d, want 4", got)
			}
		})
	}
}
