package jiratest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oxsecurity/oxbroker/jira"
)

// DefaultCloudID is the Cloud ID a Server has when Options.CloudID is empty.
const DefaultCloudID = "18cd6e54-b562-4ed3-8a43-ca1fc772b26f"

// defaultRequestLog is how many requests Requests keeps by default: enough
// for any functional test, bounded so that a long benchmark does not grow
// the log without end.
const defaultRequestLog = 10000

// Auth schemes accepted in Credential.Scheme.
const (
	SchemeBearer = "Bearer"
	SchemeBasic  = "Basic"
)

// Credential is one set of credentials the stand-in accepts.
type Credential struct {
	// Scheme is SchemeBearer (service account token, Data Center personal
	// access token) or SchemeBasic (email and personal API token).
	Scheme string
	// User is the account's email address: required for Basic; for Bearer
	// it is only the address that myself reports.
	User  string
	Token string
}

// Options configure a Server.
type Options struct {
	// CloudID is served by /_edge/tenant_info and expected in
	// /ex/jira/{cloudId}; DefaultCloudID when empty. It is not checked for
	// the UUID form, so that tests can serve a malformed one.
	CloudID string
	// Credentials are the accepted credentials. Requests without one of
	// them are refused with 401, as Jira refuses them. When empty, no
	// credentials are checked (an anonymous-access site).
	Credentials []Credential
	// DenyPermissions are permission keys (CREATE_ISSUES, ...) for which
	// mypermissions answers havePermission false.
	DenyPermissions []string
	// RequestLog is how many of the most recent requests Requests returns;
	// 10000 when zero.
	RequestLog int
	// ContextPath, such as /jira, serves the API below that path, as a
	// Data Center site installed under a context path does: its links
	// then include it. Empty serves it at the root (and under
	// /ex/jira/{cloudId}).
	ContextPath string
}

// Validate reports whether the options are usable. It changes nothing.
func (o Options) Validate() error {
	if strings.ContainsAny(o.CloudID, "/?# ") {
		return fmt.Errorf("cloud id %q: must be one path segment", o.CloudID)
	}
	for i, c := range o.Credentials {
		switch {
		case c.Scheme != SchemeBearer && c.Scheme != SchemeBasic:
			return fmt.Errorf("credential %d: scheme %q: want %s or %s", i, c.Scheme, SchemeBearer, SchemeBasic)
		case c.Token == "":
			return fmt.Errorf("credential %d: empty token", i)
		case c.Scheme == SchemeBasic && c.User == "":
			return fmt.Errorf("credential %d: Basic needs a user (email)", i)
		}
	}
	if o.RequestLog < 0 {
		return fmt.Errorf("request log %d: must not be negative", o.RequestLog)
	}
	if p := o.ContextPath; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#% ")) {
		return fmt.Errorf("context path %q: want a path such as /jira, without a trailing /", p)
	}
	return nil
}

// Request is what the stand-in recorded of a request it received.
type Request struct {
	Method        string
	Host          string
	Path          string // as received, with any /ex/jira/{cloudId} prefix
	RawQuery      string
	Header        http.Header
	ContentLength int64
}

// Server is the Jira stand-in. It is safe for concurrent use.
type Server struct {
	cloudID string
	creds   []Credential
	deny    map[string]bool
	logSize int
	context string // Options.ContextPath
	mux     *http.ServeMux
	delay   atomic.Int64 // time.Duration before answering API requests

	mu          sync.RWMutex           // guards the fields below
	projects    map[string]*project    // by key
	issues      map[string]*issue      // by key
	issueIDs    map[string]*issue      // by id
	attachments map[string]*attachment // by id
	forced      map[string]forcedResponse
	nextIssue   int // ids of issues, comments and attachments
	nextComment int
	nextAttach  int

	logMu  sync.Mutex // guards log and probes
	log    []Request
	probes int // the agent's probes (jira.ProbeUserAgent) since New or Reset
}

// forcedResponse is what SetStatus makes a path answer.
type forcedResponse struct {
	status int
	header map[string]string
}

// New returns a stand-in with no issues. It panics if opts are invalid,
// which is a mistake in the calling test.
func New(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic("jiratest: " + err.Error())
	}
	s := &Server{
		cloudID:     opts.CloudID,
		creds:       append([]Credential(nil), opts.Credentials...),
		deny:        make(map[string]bool),
		logSize:     opts.RequestLog,
		context:     opts.ContextPath,
		mux:         http.NewServeMux(),
		projects:    make(map[string]*project),
		issues:      make(map[string]*issue),
		issueIDs:    make(map[string]*issue),
		attachments: make(map[string]*attachment),
		forced:      make(map[string]forcedResponse),
		nextIssue:   10001,
		nextComment: 10000,
		nextAttach:  10000,
	}
	if s.cloudID == "" {
		s.cloudID = DefaultCloudID
	}
	if s.logSize == 0 {
		s.logSize = defaultRequestLog
	}
	for _, p := range opts.DenyPermissions {
		s.deny[p] = true
	}
	s.routes()
	return s
}

// CloudID returns the Cloud ID the stand-in serves.
func (s *Server) CloudID() string { return s.cloudID }

// SetDelay makes the stand-in wait d before answering each API request
// (everything but /_edge/tenant_info). A request cancelled while it waits
// gets no answer. Zero turns the delay off.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetStatus makes requests for path answer status with the given headers
// (for example 429 and Retry-After), and a Jira-style error body for an
// error status, once their credentials have been accepted. Path is matched
// exactly against the request path without any /ex/jira/{cloudId} prefix,
// such as /rest/api/3/myself. Status 0 removes the override.
func (s *Server) SetStatus(path string, status int, header map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.forced, path)
		return
	}
	s.forced[path] = forcedResponse{status: status, header: maps.Clone(header)}
}

// Requests returns a copy of the requests received since New or Reset, the
// oldest first, at most Options.RequestLog of the most recent. The agent's
// own probes of the site (User-Agent jira.ProbeUserAgent) are answered but
// not among them: tests count the calls OX makes; Probes counts those.
func (s *Server) Requests() []Request {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	log := s.log[max(0, len(s.log)-s.logSize):]
	out := make([]Request, len(log))
	for i, r := range log {
		out[i] = r
		out[i].Header = r.Header.Clone()
	}
	return out
}

// Probes returns how many of the agent's probes the stand-in answered
// since New or Reset.
func (s *Server) Probes() int {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.probes
}

// Reset empties the request log.
func (s *Server) Reset() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.log, s.probes = nil, 0
}

func (s *Server) record(r *http.Request) {
	if r.Header.Get("User-Agent") == jira.ProbeUserAgent {
		s.logMu.Lock()
		s.probes++
		s.logMu.Unlock()
		return
	}
	req := Request{
		Method:        r.Method,
		Host:          r.Host,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		Header:        r.Header.Clone(),
		ContentLength: r.ContentLength,
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	// The log holds up to twice logSize entries and is halved when full,
	// which keeps recording O(1) amortised.
	if len(s.log) >= 2*s.logSize {
		n := copy(s.log, s.log[len(s.log)-s.logSize:])
		clear(s.log[n:])
		s.log = s.log[:n]
	}
	s.log = append(s.log, req)
}

const (
	tenantInfoPath = "/_edge/tenant_info"
	gatewayPrefix  = "/ex/jira/"
)

// ServeHTTP records the request, then checks in order the context path,
// the Cloud ID of a gateway-style path, the delay, the credentials and any
// forced status, before routing it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.record(r)
	if s.context != "" && r.URL.Path != tenantInfoPath {
		rest, ok := strings.CutPrefix(r.URL.Path, s.context)
		if !ok || !strings.HasPrefix(rest, "/") {
			notFound(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = rest, ""
	}
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, gatewayPrefix); ok {
		id, tail, _ := strings.Cut(rest, "/")
		if id != s.cloudID {
			notFound(w, r)
			return
		}
		path = "/" + tail
	}
	if r.URL.Path != tenantInfoPath {
		if !s.wait(r.Context()) {
			return
		}
		u, ok := s.authenticate(r)
		if !ok {
			unauthorized(w)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
	}
	s.mu.RLock()
	f, forced := s.forced[path]
	s.mu.RUnlock()
	if forced {
		for k, v := range f.header {
			w.Header().Set(k, v)
		}
		if f.status < 400 {
			w.WriteHeader(f.status)
			return
		}
		writeError(w, f.status, []string{http.StatusText(f.status)}, nil)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// wait sleeps for the configured delay; it reports false if ctx ended first.
func (s *Server) wait(ctx context.Context) bool {
	d := time.Duration(s.delay.Load())
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type userKey struct{}

// authenticate returns the user whose credentials r carries.
func (s *Server) authenticate(r *http.Request) (user, bool) {
	if len(s.creds) == 0 {
		return s.defaultUser(), true
	}
	scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	email, password, basic := r.BasicAuth()
	for _, c := range s.creds {
		switch {
		case c.Scheme == SchemeBearer && strings.EqualFold(scheme, SchemeBearer) && equal(value, c.Token),
			c.Scheme == SchemeBasic && basic && email == c.User && equal(password, c.Token):
			return userFor(c), true
		}
	}
	return user{}, false
}

// defaultUser is the author of what tests add without a request: the user
// of the first credential, or the one anonymous requests act as.
func (s *Server) defaultUser() user {
	if len(s.creds) > 0 {
		return userFor(s.creds[0])
	}
	return userFor(Credential{Scheme: SchemeBearer})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// call is what a route handler needs to know about the request beyond its
// parameters: the API version and base, for self URLs, and the caller.
// Like Jira, the stand-in makes its links from the URL it was called
// through.
type call struct {
	v    string // "2" or "3"
	site string // scheme://host, plus the context path
	base string // site, plus /ex/jira/{cloudId} on the gateway
	user user
}

// url returns an absolute URL of the REST API the request came through.
func (c call) url(format string, args ...any) string {
	return c.base + "/rest/api/" + c.v + "/" + fmt.Sprintf(format, args...)
}

// avatarURL returns the URL of an icon. Icons are for browsers: Jira
// points at them on the site even when answering through the gateway.
func (c call) avatarURL(format string, args ...any) string {
	return c.site + "/rest/api/" + c.v + "/universal_avatar/view/type/" + fmt.Sprintf(format, args...)
}

// handle registers h for pattern ("METHOD path" below /rest/api/{2,3}/) at
// the root and under the gateway prefix.
func (s *Server) handle(pattern string, h func(http.ResponseWriter, *http.Request, call)) {
	method, path, _ := strings.Cut(pattern, " ")
	for _, v := range []string{"2", "3"} {
		for _, prefix := range []string{"", "/ex/jira/{cloudId}"} {
			s.mux.HandleFunc(method+" "+prefix+"/rest/api/"+v+"/"+path, func(w http.ResponseWriter, r *http.Request) {
				scheme := "http"
				if r.TLS != nil {
					scheme = "https"
				}
				c := call{v: v, site: scheme + "://" + r.Host + s.context}
				c.base = c.site
				if id := r.PathValue("cloudId"); id != "" {
					c.base += gatewayPrefix + id
				}
				c.user, _ = r.Context().Value(userKey{}).(user)
				h(w, r, c)
			})
		}
	}
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET "+tenantInfoPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"cloudId": s.cloudID})
	})
	s.handle("GET myself", s.myself)
	s.handle("GET serverInfo", s.serverInfo)
	s.handle("GET mypermissions", s.myPermissions)
	s.handle("POST issue", s.createIssue)
	s.handle("GET issue/{key}", s.getIssue)
	s.handle("PUT issue/{key}", s.editIssue)
	s.handle("DELETE issue/{key}", s.deleteIssue)
	s.handle("GET issue/{key}/comment", s.getComments)
	s.handle("POST issue/{key}/comment", s.addComment)
	s.handle("GET issue/{key}/comment/{id}", s.getComment)
	s.handle("PUT issue/{key}/comment/{id}", s.updateComment)
	s.handle("GET project/search", s.searchProjects)
	s.handle("GET issue/{key}/transitions", s.getTransitions)
	s.handle("POST issue/{key}/transitions", s.doTransition)
	s.handle("POST issue/{key}/attachments", s.uploadAttachments)
	s.handle("GET attachment/{id}", s.attachmentMeta)
	s.handle("GET attachment/content/{id}", s.attachmentContent)
	s.handle("GET search/jql", s.searchJQL)
	s.handle("POST search/jql", s.searchJQL)
	s.handle("GET search", s.searchOld)
	s.handle("POST search", s.searchOld)
	s.mux.HandleFunc("/", notFound)
}

// jiraError is the body of Jira's error responses.
type jiraError struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, messages []string, fields map[string]string) {
	if messages == nil {
		messages = []string{}
	}
	if fields == nil {
		fields = map[string]string{}
	}
	writeJSON(w, status, jiraError{ErrorMessages: messages, Errors: fields})
}

// writeJSON writes v with an explicit Content-Length, as Jira does for
// ordinary responses, so clients see the same framing.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="protected-area"`)
	writeError(w, http.StatusUnauthorized,
		[]string{"You are not authorized to perform this operation. Please log in."}, nil)
}

// notFound answers as Jira's REST framework does for a path it does not
// know.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, []string{"null for uri: " + r.URL.String()}, nil)
}

func badRequest(w http.ResponseWriter, messages ...string) {
	writeError(w, http.StatusBadRequest, messages, nil)
}

// decodeJSON reads a JSON request body of at most 1 MiB.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, []string{"Request body is too large."}, nil)
			return false
		}
		badRequest(w, "Request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}
