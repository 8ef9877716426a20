package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/copybuf"
	"github.com/oxsecurity/oxbroker/internal/hostport"
	"github.com/oxsecurity/oxbroker/internal/replace"
	"github.com/oxsecurity/oxbroker/jira"
)

// Values used when the matching config.Site field is zero.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultMaxConcurrent = 32
	DefaultMaxBody       = 50 << 20 // 50 MiB
	DefaultQueueTimeout  = 2 * time.Second
)

// defaultUserAgent is sent when the caller sent no User-Agent.
const defaultUserAgent = "oxbroker"

// Options tune a Proxy beyond what the site's config says.
type Options struct {
	// Logger receives the audit log (one line per request, at info) and
	// the proxy's warnings. Nil discards them.
	Logger *slog.Logger
	// Policy decides which method and path pairs are forwarded. Nil means
	// FirstCutPolicy.
	Policy Policy
	// Observer, if set, is told about every finished request (metrics).
	Observer Observer
	// QueueTimeout bounds how long a request waits for one of the site's
	// max_concurrent upstream slots before it is refused with overloaded.
	// Zero means DefaultQueueTimeout.
	QueueTimeout time.Duration
	// Broker is the agent's broker id, which the public URLs of the
	// site's links name (/b/<broker>/<site>/...). Without it links are not
	// rewritten.
	Broker string
}

// Proxy forwards checked requests to one site's Jira with the site's
// credentials. It is safe for concurrent use.
type Proxy struct {
	site string
	auth config.Auth

	// scheme and host are the upstream's, from config only. basePath and
	// baseRawPath are the decoded and escaped path of the site's URL
	// without a trailing "/"; the request's path is appended to them.
	scheme, host          string
	basePath, baseRawPath string
	// hostport names Jira in error messages.
	hostport string
	caFile   string

	timeout      time.Duration
	maxBody      int64
	queueTimeout time.Duration
	// sem holds one token per in-flight upstream request.
	sem       chan struct{}
	overloads overloadLog

	// moreHeaders are the site's allow.headers, by canonical name.
	moreHeaders map[string]bool

	policy    Policy
	observer  Observer
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy

	// What the proxy changes in Jira's answers (response.go): creds
	// removes the site's credential (credRules); with rewriteLinks and a
	// broker, links holds the replacer of the last public base, which
	// adds the rules rewriting linkBases.
	creds        *replace.Replacer
	credRules    []replace.Rule
	rewriteLinks bool
	broker       string
	linkBases    []string
	links        atomic.Pointer[links]
	badBase      warnLimiter // an invalid Ox-Broker-Public-Base
	reflected    warnLimiter // a credential found in an answer
}

var _ http.Handler = (*Proxy)(nil)

// New returns the proxy of one site. site.URL is the resolved upstream
// base URL (for Cloud, https://api.atlassian.com/ex/jira/<cloudId>) and
// site.Auth.Token holds the token. Zero Timeout, MaxConcurrent and MaxBody
// take DefaultTimeout, DefaultMaxConcurrent and DefaultMaxBody.
//
// New fails on a URL that is not an absolute http(s) URL without user
// info, query or fragment, on an unknown auth type or a missing token, on
// an unreadable tls.ca_file or one without certificates, and on a bad
// proxy URL. It logs a warning once when the site turns TLS verification
// off or talks plain http.
func New(site config.Site, opts Options) (*Proxy, error) {
	p, err := newProxy(site, opts)
	if err != nil {
		return nil, fmt.Errorf("site %q: %w", site.Name, err)
	}
	return p, nil
}

func newProxy(site config.Site, opts Options) (*Proxy, error) {
	base, err := parseBaseURL(site.URL)
	if err != nil {
		return nil, err
	}
	if err := checkAuth(site.Auth); err != nil {
		return nil, err
	}
	switch {
	case site.Timeout < 0:
		return nil, errors.New("timeout must not be negative")
	case site.MaxConcurrent < 0:
		return nil, errors.New("max_concurrent must not be negative")
	case site.MaxBody < 0:
		return nil, errors.New("max_body must not be negative")
	case opts.QueueTimeout < 0:
		return nil, errors.New("queue timeout must not be negative")
	}

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("site", site.Name)

	p := &Proxy{
		site:         site.Name,
		auth:         site.Auth,
		scheme:       base.Scheme,
		host:         base.Host,
		basePath:     strings.TrimRight(base.Path, "/"),
		baseRawPath:  strings.TrimRight(base.EscapedPath(), "/"),
		hostport:     hostport.Of(base),
		caFile:       site.TLS.CAFile,
		timeout:      cmp.Or(site.Timeout, DefaultTimeout),
		maxBody:      cmp.Or(int64(site.MaxBody), DefaultMaxBody),
		queueTimeout: cmp.Or(opts.QueueTimeout, DefaultQueueTimeout),
		policy:       opts.Policy,
		observer:     opts.Observer,
		log:          log,
		credRules:    credentialRules(site.Auth),
		rewriteLinks: site.RewriteLinks && opts.Broker != "",
		broker:       opts.Broker,
		linkBases:    linkBases(site, base),
	}
	p.creds = replace.New(p.credRules...)
	if p.policy == nil {
		al, err := jira.NewAllowlist(site.Allow)
		if err != nil {
			return nil, err
		}
		p.policy = al
	}
	if p.moreHeaders, err = headerAllowlist(site.Allow.Headers); err != nil {
		return nil, err
	}
	maxConcurrent := cmp.Or(site.MaxConcurrent, DefaultMaxConcurrent)
	p.sem = make(chan struct{}, maxConcurrent)

	p.transport, err = newTransport(site, maxConcurrent, p.timeout, log)
	if err != nil {
		return nil, err
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		BufferPool:     copybuf.Pool{}, // shared by all proxies, whatever the site
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		// ReverseProxy reports here mostly body copies cut short, usually
		// because the caller went away; the audit line has the outcome.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	if site.TLS.InsecureSkipVerify && base.Scheme == "https" {
		log.Warn("TLS certificate verification of Jira is turned off for this site (tls.insecure_skip_verify)", "upstream", p.hostport)
	}
	if base.Scheme == "http" {
		log.Warn("Jira URL uses plain http: the Jira token crosses the network unencrypted", "upstream", p.hostport)
	}
	return p, nil
}

// parseBaseURL checks the site's upstream URL. Its errors do not repeat
// the URL, which might hold a password.
func parseBaseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("url is empty (is the Cloud ID resolved?)")
	}
	u, err := parseQuiet("url", s)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("url: scheme must be http or https, not %q", u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return nil, errors.New("url: must be absolute, like https://jira.example.com")
	case u.User != nil:
		return nil, errors.New("url: must not hold user info; credentials belong in auth")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("url: must not have a query or fragment")
	}
	if p := strings.TrimRight(u.EscapedPath(), "/"); p != "" {
		if err := CheckPath(p); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	}
	return u, nil
}

// checkAuth refuses auth settings that jira.SetCredentials would turn into
// an unauthenticated request.
func checkAuth(a config.Auth) error {
	switch a.Type {
	case config.AuthServiceAccount, config.AuthBearer:
	case config.AuthBasic:
		if a.Email == "" {
			return errors.New("auth.email is required for basic auth")
		}
	default:
		return fmt.Errorf("auth.type %q is not one of %s, %s, %s", a.Type,
			config.AuthServiceAccount, config.AuthBasic, config.AuthBearer)
	}
	if a.Token.IsZero() {
		return errors.New("auth: token is empty")
	}
	return nil
}

// Close closes the idle connections to Jira. It does not wait for the
// requests in flight; the server in front of the Proxy does that.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
}

// ServeHTTP checks the request and forwards it to Jira; see the package
// documentation for the steps.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{
		StatusRecorder: brokerhttp.StatusRecorder{ResponseWriter: w},
		start:          time.Now(),
		requestID:      r.Header.Get(brokerhttp.HeaderRequestID),
	}
	finished := false
	defer func() { p.audit(r, ex, !finished) }()

	if code, msg := p.check(r, ex); code != "" {
		p.refuse(ex, code, msg)
		finished = true
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// The original writer, not ex: MaxBytesReader tells Go's server
		// through it to close the connection once the limit is hit (when
		// the server is brokerhttp.GuardBodies, as the agent's is, that
		// closes it anyway: the body was not read to its end).
		ex.body.ReadCloser = http.MaxBytesReader(w, r.Body, p.maxBody)
		r.Body = &ex.body
	}

	if !p.acquire(r, ex) {
		finished = true
		return
	}
	defer p.release()

	ex.links = p.publicBase(r, ex.requestID)
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	// Jira's chunked answers would be flushed on every write (a tunnel
	// frame and a system call each): flush within a few ms instead.
	df := brokerhttp.NewDelayedFlush(ex.ResponseWriter, brokerhttp.FlushDelay)
	defer df.Stop()
	ex.ResponseWriter = df
	p.rp.ServeHTTP(ex, r)
	finished = true
}

// check runs the checks made before anything is sent to Jira. It returns
// the error code and message of a refusal, or "" to go on.
func (p *Proxy) check(r *http.Request, ex *exchange) (brokerhttp.Code, string) {
	raw, _, _ := strings.Cut(r.RequestURI, "?")
	ex.path = raw
	if !strings.HasPrefix(raw, "/") {
		ex.path = ""
		return brokerhttp.BadRequest, `request target must be a path starting with "/" (origin-form)`
	}
	// Go's server resolves this conflict before the handler runs (RFC
	// 9112: Transfer-Encoding wins, Content-Length is deleted), so this
	// catches it only in requests read by other means.
	if _, hasCL := r.Header["Content-Length"]; hasCL && (len(r.TransferEncoding) > 0 || r.Header["Transfer-Encoding"] != nil) {
		return brokerhttp.BadRequest, "request has both Content-Length and Transfer-Encoding"
	}
	if r.Header["Upgrade"] != nil {
		return brokerhttp.BadRequest, "protocol upgrades are not supported"
	}
	clean, err := checkPath(raw)
	if err != nil {
		return brokerhttp.BadRequest, "bad request path: " + err.Error()
	}
	ex.path = clean
	dec, err := p.policy.Match(r.Method, clean)
	if err != nil {
		// A refused call of a known operation is logged by its template
		// too; an unknown path is logged as it came, for the audit.
		var de *jira.DeniedError
		if errors.As(err, &de) {
			if de.Template != "" {
				ex.template, ex.operation = de.Template, de.OperationID
			}
			ex.reason = deniedReason(de) // the message holds the caller's path
		}
		return brokerhttp.PathNotAllowed, err.Error()
	}
	ex.template, ex.operation = dec.Template, dec.OperationID
	if r.ContentLength > p.maxBody {
		return brokerhttp.TooLarge, p.tooLargeMessage()
	}
	return "", ""
}

// deniedReason says why the allowlist refused a request without the
// request's path: the reason, and the scopes or keys that would allow it.
func deniedReason(de *jira.DeniedError) string {
	r := "allowlist: " + de.Reason.String()
	switch {
	case de.Reason == jira.ReasonMissingScope && len(de.RequiredScopes) > 0:
		r += " (needs " + strings.Join(de.RequiredScopes, ", ") + ")"
	case de.Reason == jira.ReasonMethodNotAllowed && len(de.Methods) > 0:
		r += " (the path takes " + strings.Join(de.Methods, ", ") + ")"
	}
	return r
}

func (p *Proxy) tooLargeMessage() string {
	return fmt.Sprintf("request body is larger than this site's max_body of %d bytes", p.maxBody)
}

// acquire takes an upstream slot, waiting at most queueTimeout. It
// answers the request itself and returns false when it cannot.
func (p *Proxy) acquire(r *http.Request, ex *exchange) bool {
	select {
	case p.sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(p.queueTimeout)
	defer t.Stop()
	select {
	case p.sem <- struct{}{}:
		return true
	case <-t.C:
		p.overloads.refuse(p.log, cap(p.sem), time.Now())
		p.refuse(ex, brokerhttp.Overloaded, fmt.Sprintf(
			"too many requests in flight to this site (max_concurrent %d); retry later", cap(p.sem)))
		return false
	case <-r.Context().Done():
		ex.canceled = true
		return false
	}
}

func (p *Proxy) release() { <-p.sem }

// refuse answers with a broker error.
func (p *Proxy) refuse(ex *exchange, code brokerhttp.Code, msg string) {
	ex.code = code
	if ex.reason == "" {
		ex.reason = msg
	}
	brokerhttp.WriteError(ex, code, msg, ex.requestID)
}

// rewrite builds the request to Jira. The upstream comes from the config
// only: the inbound URL's scheme and host (absolute-form) and its Host
// header are ignored.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	// The path forwarded is exactly the one check accepted: ServeHTTP ran
	// checkPath on this same RequestURI.
	raw, _, _ := strings.Cut(pr.In.RequestURI, "?")
	decoded, err := url.PathUnescape(raw)
	if err != nil {
		panic(http.ErrAbortHandler) // unreachable: checkPath accepted raw
	}
	out := pr.Out
	u := out.URL
	u.Scheme = p.scheme
	u.Host = p.host
	u.Opaque = ""
	u.User = nil
	u.OmitHost = false
	u.Path = p.basePath + decoded
	u.RawPath = p.baseRawPath + raw
	u.Fragment, u.RawFragment = "", ""
	out.Host = p.host

	// Only the headers a Jira client needs go on (headers.go); the
	// caller's Authorization, Cookie, identity and routing headers are
	// not among them, and the credentials are set after the filter.
	p.filterRequestHeader(out.Header)
	// A caller could declare "Trailer: Authorization" and send a trailer;
	// trailers are not forwarded.
	out.Trailer = nil
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", defaultUserAgent)
	}
	upstreamEncoding(out.Header)
	jira.SetCredentials(out.Header, p.auth)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
