package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
)

// agentState is what the running agent says of itself on its admin
// listener's /readyz, for `oxbroker service status`: whether it is
// connected to the gateway (line: "connected", or "not connected: <cause>
// Fix: <fix>"), and the sites that are down or unhealthy, one line each.
// known is false when the agent could not be asked (admin.listen off, the
// agent starting); err then says why.
type agentState struct {
	known     bool
	connected bool
	line      string
	sites     []string
}

// readyzTimeout bounds the question to the agent.
const readyzTimeout = 3 * time.Second

// noTunnel starts the /readyz reason of an agent with no tunnel up
// (agent.Readiness).
const noTunnel = "no tunnel to the gateway is up"

// askAgent reads /readyz at the admin address addr.
func askAgent(ctx context.Context, addr string) (agentState, error) {
	ctx, cancel := context.WithTimeout(ctx, readyzTimeout)
	defer cancel()
	u := "http://" + addr + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return agentState{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return agentState{}, fmt.Errorf("no answer from %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return agentState{}, fmt.Errorf("reading %s: %w", u, err)
	}
	return parseReadyz(resp.StatusCode, string(body))
}

// parseReadyz reads the answer of the agent's /readyz: "ready" or "not
// ready: <why>" on its first line, then a line per site that is down or
// unhealthy.
func parseReadyz(status int, body string) (agentState, error) {
	// The answer is printed: each line is made one line of text without
	// control characters, whoever listens at the address.
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	for i, l := range lines {
		lines[i] = clip.Line(l, 1024)
	}
	st := agentState{known: true, sites: lines[1:]}
	first := lines[0]
	switch why, notReady := strings.CutPrefix(first, "not ready: "); {
	case status == http.StatusOK && first == "ready":
		st.connected, st.line = true, "connected"
	case status == http.StatusServiceUnavailable && notReady && strings.HasPrefix(why, noTunnel):
		cause := strings.TrimPrefix(strings.TrimPrefix(why, noTunnel), ": ")
		if cause == "" {
			cause = noTunnel + " yet"
		}
		st.line = "not connected: " + cause
	case status == http.StatusServiceUnavailable && notReady:
		st.connected, st.line = true, "not ready: "+why
	default:
		return agentState{}, fmt.Errorf("the admin listener answered /readyz with %d %q: is it the agent's?", status, first)
	}
	return st, nil
}

// adminAddr is the agent's admin listener as the config at path sets it
// ("" when the config turns it off), or the default when admin.listen
// cannot be read (a user who may not read the config), with why.
// Only that key is read: the token files the config names may be
// readable by the service alone (a systemd credential).
func adminAddr(path string) (string, error) {
	addr, err := config.AgentAdminListen(path, lookupEnv())
	if err != nil {
		return config.DefaultAgentAdmin, err
	}
	return addr, nil
}
