package agent

import (
	"context"
	"errors"
	"slices"

	"github.com/oxsecurity/oxbroker/config"
)

// errReconnect ends a generation of connections after a reload changed
// how the agent reaches or introduces itself to the gateway.
var errReconnect = errors.New("gateway or broker settings changed")

// Reload applies a new config without dropping the tunnels: sites,
// allowlists and Jira tokens take effect for the next request, and the
// gateway is sent the new site list. If the broker id or token or the
// gateway settings changed, the agent dials new sessions with them and
// drains the old ones. On any error nothing changes.
//
// state_dir, admin.listen and log settings take effect at restart.
func (a *Agent) Reload(ctx context.Context, cfg *config.Agent) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := CheckAllowlists(cfg); err != nil {
		return err
	}
	r, err := newRouter(ctx, cfg.Sites, routerOptions{broker: cfg.Broker.ID, log: a.log, metrics: a.metrics, prev: a.router.Load(), up: a.sendSites})
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.cfg
	reconnect := cfg.Broker.ID != old.Broker.ID || cfg.Broker.Token != old.Broker.Token ||
		!sameGateway(cfg.Gateway, old.Gateway)
	if reconnect {
		d, err := NewDialer(cfg.Gateway, a.opts.Tunnel)
		if err != nil {
			a.mu.Unlock()
			r.close()
			return err
		}
		a.dialer = d
	}
	a.setConfig(cfg)
	prev := a.router.Swap(r)
	cancelGen := a.cancelGen
	a.mu.Unlock()
	a.publishExpiry(cfg.Sites)

	// Requests in flight finish on the old proxies; this only drops their
	// idle connections to Jira.
	prev.close()
	if reconnect {
		a.log.Info("config reloaded; reconnecting with the new gateway or broker settings")
		if cancelGen != nil {
			cancelGen(errReconnect)
		}
		return nil
	}
	a.sendSites()
	a.log.Info("config reloaded", "sites", len(r.order))
	return nil
}

func sameGateway(a, b config.GatewayDial) bool {
	return a.Address == b.Address && slices.Equal(a.Addresses, b.Addresses) && a.Transport == b.Transport &&
		a.Connections == b.Connections && a.CAFile == b.CAFile && a.ServerName == b.ServerName && a.Proxy == b.Proxy
}
