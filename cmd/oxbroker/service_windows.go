package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kardianos/service"
)

const (
	logHint       = `Event Viewer > Windows Logs > Application, source "oxbroker"`
	privilegeHint = `needs Administrator: run it from an elevated prompt ("Run as administrator")`
)

// checkPrivileged leaves the question to the SCM: it answers "access
// denied", which actionError turns into privilegeHint.
func checkPrivileged() error { return nil }

// serviceUser is "": the service runs as LocalSystem.
func serviceUser() string { return "" }

// platformInstall starts the service at boot and has the SCM restart it
// 5 s after each failure; the failure count resets after a day without
// one. kardianos registers the event log source "oxbroker" on install.
func platformInstall(installPlan) (service.KeyValue, []string, error) {
	return service.KeyValue{
			service.StartType:              service.ServiceStartAutomatic,
			service.OnFailure:              service.OnFailureRestart,
			service.OnFailureDelayDuration: "5s",
			service.OnFailureResetPeriod:   24 * 60 * 60,
		}, []string{`service: "` + serviceName + `" in services.msc, as LocalSystem, automatic start, restarted 5 s after a failure`},
		nil
}

func prepareInstall(installPlan) error { return nil }

func checkManager() error { return nil }

// runManaged runs the agent. When the SCM started this process it also
// talks to the SCM: the SCM's stop (or shutdown) cancels run's context,
// and the service reports stopped once the agent has drained. Its error
// is the SCM conversation's; run itself has none.
func runManaged(ctx context.Context, run func(context.Context)) error {
	if service.Interactive() {
		run(ctx)
		return nil
	}
	// Only the SCM stops a service. Go delivers CTRL_LOGOFF_EVENT, which
	// a service receives whenever any user logs off, as SIGTERM; cli.Main
	// would take it for a stop.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	p := &scmProgram{parent: ctx, run: run, done: make(chan struct{})}
	s, err := service.New(p, &service.Config{Name: serviceName})
	if err != nil {
		return err
	}
	return s.Run()
}

// scmProgram is the agent as kardianos runs it under the SCM.
type scmProgram struct {
	parent context.Context
	run    func(context.Context)
	cancel context.CancelFunc // set by Start, before Stop can be called
	done   chan struct{}      // closed when run has returned
}

func (p *scmProgram) Start(service.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.run(ctx)
		if ctx.Err() == nil {
			// The agent ended although the SCM did not stop it. Exiting
			// without reporting "stopped" is a failure to the SCM, which
			// restarts the service.
			os.Exit(1)
		}
	}()
	return nil
}

// Stop returns once the agent has drained its in-flight requests.
func (p *scmProgram) Stop(service.Service) error {
	p.cancel()
	<-p.done
	return nil
}

// logOutput is where "oxbroker run" writes. Under the SCM stderr goes
// nowhere, so it writes to the Application event log, source "oxbroker";
// each write (one log record, or the config problems) is one event.
func logOutput(stderr io.Writer) io.Writer {
	if service.Interactive() {
		return stderr
	}
	s, err := service.New(noProgram{}, &service.Config{Name: serviceName})
	if err != nil {
		return stderr
	}
	l, err := s.SystemLogger(nil)
	if err != nil {
		return stderr
	}
	return eventLog{l}
}

type eventLog struct{ l service.Logger }

func (e eventLog) Write(b []byte) (int, error) {
	msg := strings.TrimRight(string(b), "\r\n")
	var err error
	switch level := recordLevel(b); {
	case strings.HasPrefix(level, "DEBUG"), strings.HasPrefix(level, "INFO"):
		err = e.l.Info(msg)
	case strings.HasPrefix(level, "WARN"):
		err = e.l.Warning(msg)
	default:
		err = e.l.Error(msg)
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// recordLevel is the level of a record as slog's text and JSON handlers
// write it (after the time: "level=WARN", "level":"WARN"), or "" for other
// output, such as config problems.
func recordLevel(b []byte) string {
	for _, key := range []string{" level=", `,"level":"`} {
		if i := bytes.Index(b, []byte(key)); i >= 0 {
			rest := b[i+len(key):]
			if end := bytes.IndexAny(rest, " \""); end >= 0 {
				rest = rest[:end]
			}
			return string(rest)
		}
	}
	return ""
}
