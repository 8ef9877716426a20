// Package sdnotify tells systemd how a Type=notify service is doing
// (sd_notify(3)): ready, stopping, a status line, and the watchdog's
// keep-alive pings. The protocol is coreos/go-systemd's daemon package;
// this package adds the supervision loop both binaries share. Outside
// systemd (no NOTIFY_SOCKET, as on Windows, macOS or in a terminal) every
// call does nothing.
package sdnotify

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The states Notify sends (sd_notify(3)).
const (
	Ready    = daemon.SdNotifyReady
	Stopping = daemon.SdNotifyStopping
	Watchdog = daemon.SdNotifyWatchdog
)

// Status is the STATUS= assignment that systemctl status shows. A newline
// would end the assignment, so each becomes "; ".
func Status(line string) string {
	return "STATUS=" + strings.Join(strings.Fields(strings.ReplaceAll(line, "\n", "; ")), " ")
}

// Notify sends the assignments, one datagram, to the socket systemd named
// in NOTIFY_SOCKET. It reports whether there was one to send to.
func Notify(states ...string) (bool, error) {
	return daemon.SdNotify(false, strings.Join(states, "\n"))
}

// WatchdogInterval is WatchdogSec= of this service's unit (WATCHDOG_USEC),
// or 0 when systemd watches no watchdog for this process.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// Report is one answer of a Supervise probe.
type Report struct {
	Ready  bool   // the service serves (the agent: a tunnel is up)
	Status string // one line for systemctl status
}

// Options tune Supervise; the zero value of each field is its default.
type Options struct {
	// ReadyWait bounds the wait for the first ready report: after it the
	// service tells systemd READY=1 all the same, so that a service that
	// cannot serve yet (its gateway is down) does not fail the boot.
	ReadyWait time.Duration
	// Watchdog is WatchdogSec=; 0 reads it from the environment.
	Watchdog time.Duration
	// Every is how often the probe runs (default 1 s, and at least four
	// times per watchdog interval).
	Every time.Duration
	// Send delivers a datagram; nil is Notify. Tests record instead.
	Send func(states ...string) (bool, error)
	// Log receives the one warning Supervise gives when sending fails.
	Log *slog.Logger
}

// Supervise reports probe's answers to systemd until ctx ends, then sends
// STOPPING=1. It sends READY=1 the first time probe reports ready, or
// when ReadyWait has passed; STATUS= whenever the line changes; and
// WATCHDOG=1 after each probe that returns, at least twice per watchdog
// interval.
//
// The pings come from this loop and only after probe has answered, so a
// probe that hangs stops them and systemd restarts the service
// (WatchdogSec=): probe must touch what a hang would stop, such as the
// lock the service's work takes. Without NOTIFY_SOCKET Supervise returns
// at once.
func Supervise(ctx context.Context, probe func() Report, o Options) {
	if o.Send == nil {
		o.Send = Notify
	}
	if o.Watchdog == 0 {
		o.Watchdog = WatchdogInterval()
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Watchdog > 0 && o.Every > o.Watchdog/4 {
		o.Every = o.Watchdog / 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	warned := false
	send := func(states ...string) bool {
		sent, err := o.Send(states...)
		if err != nil && !warned {
			warned = true
			o.Log.Warn("cannot tell systemd the service's state", "err", err)
		}
		return sent || err != nil
	}
	// A first status line tells whether anyone listens.
	first := probe()
	if !send(Status(first.Status)) {
		return
	}
	readyBy := time.Now().Add(o.ReadyWait)
	ready, last := false, first.Status
	report := func(r Report) {
		var states []string
		if !ready && (r.Ready || !time.Now().Before(readyBy)) {
			ready = true
			states = append(states, Ready)
		}
		if r.Status != last || len(states) > 0 {
			last = r.Status
			states = append(states, Status(r.Status))
		}
		if o.Watchdog > 0 {
			states = append(states, Watchdog)
		}
		if len(states) > 0 {
			send(states...)
		}
	}
	report(first)
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			send(Stopping, Status("stopping: draining requests in flight"))
			return
		case <-t.C:
			report(probe())
		}
	}
}
