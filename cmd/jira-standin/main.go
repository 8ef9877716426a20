// Command jira-standin serves the in-memory Jira stand-in of package
// jiratest, for the demo and the end-to-end tests that start the real
// binaries.
//
// Tokens may be given in the environment (JIRA_STANDIN_BEARER_TOKEN,
// JIRA_STANDIN_BASIC_TOKEN) rather than as flags, which other users can
// read in the process list. It logs one line per request to stderr, never
// with credential values, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/atomicfile"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "jira-standin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var (
		listen      = flag.String("listen", "127.0.0.1:0", "address to listen on (`host:port`; port 0 picks a free one)")
		bearerToken = flag.String("bearer-token", "", "accept `token` as Bearer (default $JIRA_STANDIN_BEARER_TOKEN)")
		basicEmail  = flag.String("basic-email", "", "accept Basic credentials for `email` (with --basic-token)")
		basicToken  = flag.String("basic-token", "", "API `token` for --basic-email (default $JIRA_STANDIN_BASIC_TOKEN)")
		cloudID     = flag.String("cloud-id", jiratest.DefaultCloudID, "Cloud ID served by /_edge/tenant_info and expected in /ex/jira/{cloudId}")
		contextPath = flag.String("context-path", "", "serve the API below this `path` (/jira), as a Data Center site under a context path")
		tlsCert     = flag.String("tls-cert", "", "serve HTTPS with this certificate `file` (with --tls-key)")
		tlsKey      = flag.String("tls-key", "", "private key `file` for --tls-cert")
		addrFile    = flag.String("addr-file", "", "write the listening host:port to `file` once listening")
		delay       = flag.Duration("delay", 0, "wait this long before answering each API request")
		seedIssue   = flag.String("seed-issue", "", "create issue `KEY` (PROJ-N) at start, with PROJ-1 to PROJ-N-1 before it (for benchmarks)")
		attachSize  = flag.String("attachment-size", "", "attach a synthetic file of this `size` (bytes, or 100MiB) to --seed-issue")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *bearerToken == "" {
		*bearerToken = os.Getenv("JIRA_STANDIN_BEARER_TOKEN")
	}
	if *basicToken == "" {
		*basicToken = os.Getenv("JIRA_STANDIN_BASIC_TOKEN")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if (*basicEmail == "") != (*basicToken == "") {
		return errors.New("--basic-email and --basic-token (or $JIRA_STANDIN_BASIC_TOKEN) go together")
	}

	opts := jiratest.Options{CloudID: *cloudID, ContextPath: *contextPath}
	if *bearerToken != "" {
		opts.Credentials = append(opts.Credentials, jiratest.Credential{Scheme: jiratest.SchemeBearer, Token: *bearerToken})
	}
	if *basicEmail != "" {
		opts.Credentials = append(opts.Credentials, jiratest.Credential{Scheme: jiratest.SchemeBasic, User: *basicEmail, Token: *basicToken})
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(opts.Credentials) == 0 {
		log.Warn("no credentials given: every request is accepted")
	}
	standin := jiratest.New(opts)
	standin.SetDelay(*delay)
	if err := seed(standin, *seedIssue, *attachSize, log); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		// Renamed into place: a process polling for the file never
		// reads it half written.
		if err := atomicfile.Write(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("write address file: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           logRequests(log, standin),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info("listening", "addr", addr, "tls", *tlsCert != "", "cloud_id", standin.CloudID())

	errc := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close() // requests still delayed: cut them off
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// maxSeedIssues bounds --seed-issue, which creates every issue of the
// project up to the one named.
const maxSeedIssues = 10000

// seed creates the issue key, and before it the lower-numbered issues of
// its project (the stand-in numbers keys per project from 1), then
// attaches a synthetic file of attachSize bytes to it if asked. Benchmarks
// use it to have an issue and a large download without an upload first.
func seed(s *jiratest.Server, key, attachSize string, log *slog.Logger) error {
	if key == "" {
		if attachSize != "" {
			return errors.New("--attachment-size needs --seed-issue")
		}
		return nil
	}
	project, num, ok := strings.Cut(key, "-")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || n > maxSeedIssues {
		return fmt.Errorf("--seed-issue %q: want PROJECT-N with N from 1 to %d", key, maxSeedIssues)
	}
	var got string
	for i := 1; i <= n; i++ {
		got = s.AddIssue(project, fmt.Sprintf("Seeded issue %d", i))
	}
	if got != key {
		return fmt.Errorf("--seed-issue %q: the stand-in named it %q", key, got)
	}
	if attachSize == "" {
		log.Info("seeded", "issue", key)
		return nil
	}
	size, err := config.ParseByteSize(attachSize)
	if err != nil || size <= 0 {
		return fmt.Errorf("--attachment-size %q: want a positive size such as 100MiB", attachSize)
	}
	id := s.AddAttachment(key, "seeded.bin", int64(size))
	log.Info("seeded", "issue", key, "attachment", id, "bytes", int64(size))
	return nil
}

// logRequests logs one line per request. It names the auth scheme a
// request used but never its credentials.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info("request",
			"method", r.Method,
			"path", r.URL.Path,
			"status", rec.status,
			"bytes", rec.bytes,
			"duration", time.Since(start).Round(time.Microsecond),
			"auth", authScheme(r.Header.Get("Authorization")),
			"remote", r.RemoteAddr)
	})
}

// authScheme names the scheme of an Authorization header value. Anything
// but a known scheme is reported as "other": a malformed header may be a
// bare token.
func authScheme(v string) string {
	scheme, _, _ := strings.Cut(v, " ")
	switch {
	case v == "":
		return "none"
	case strings.EqualFold(scheme, jiratest.SchemeBearer):
		return jiratest.SchemeBearer
	case strings.EqualFold(scheme, jiratest.SchemeBasic):
		return jiratest.SchemeBasic
	}
	return "other"
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
