package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/oxsecurity/oxbroker/config"
)

// RequestHeader must be on every request that changes something (POST
// /api/check): a cross-site HTML form cannot set a header, and a
// cross-site script cannot send one without a CORS preflight, which the
// admin listener never allows. The page's script sets it.
const RequestHeader = "X-Oxbroker-Request"

// ContentSecurityPolicy is sent with every answer of the page and its
// API: the page's own style sheet and script, no inline script or style,
// no frames, nothing from elsewhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// WithPage returns the admin listener's handler: /healthz, /readyz and
// /metrics from base, unchanged and open to anyone as before, and every
// other path from page (the status page and its API) behind the guard
// (Guard), when access.Page is on. listen is the listener's address.
//
// It refuses a page on a listener that is not loopback-only without
// access.Auth, as the config's validation does: such a page would be
// open to anyone who reaches the port.
func WithPage(base, page http.Handler, listen string, access config.AdminPage) (http.Handler, error) {
	if !access.Page {
		return base, nil
	}
	g, err := NewGuard(listen, access)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics"} {
		mux.Handle(p, base)
	}
	mux.Handle("/", g.Wrap(page))
	return mux, nil
}

// Guard protects the status page and its API:
//   - the Host must name this listener (its address, a loopback name or
//     an admin.hosts name), so that a web page whose name an attacker
//     points at 127.0.0.1 (DNS rebinding) gets nothing;
//   - with admin.auth, the caller must authenticate (Bearer, or Basic,
//     which browsers ask for themselves);
//   - a request that changes something must be a POST that is not cross
//     site (Sec-Fetch-Site, Origin against Host) and carries
//     RequestHeader;
//   - every answer carries a strict Content-Security-Policy and is never
//     cached or framed.
type Guard struct {
	hosts []string // host names the page answers to, lower case
	auth  *authenticator
	cross *http.CrossOriginProtection
}

// NewGuard returns the guard of a page on listener listen.
func NewGuard(listen string, access config.AdminPage) (*Guard, error) {
	a := access.Auth
	if a.Type == config.AdminAuthNone && !config.LoopbackListen(listen) {
		return nil, fmt.Errorf("admin listener %s is not a loopback address: the status page needs admin.auth (or admin.page: false)", listen)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("admin listener %q: %w", listen, err)
	}
	g := &Guard{hosts: []string{"localhost"}, cross: http.NewCrossOriginProtection()}
	if host != "" {
		g.hosts = append(g.hosts, strings.ToLower(host))
	}
	for _, h := range access.Hosts {
		g.hosts = append(g.hosts, strings.ToLower(h))
	}
	if a.Type != config.AdminAuthNone {
		if g.auth, err = newAuthenticator(a); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Wrap puts h behind the guard.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", "no-store")
		if !g.hostAllowed(r.Host) {
			http.Error(w, "this admin listener does not serve the host name "+quoteHost(r.Host)+"; reach it by its address, localhost, or a name in admin.hosts", http.StatusMisdirectedRequest)
			return
		}
		if g.auth != nil {
			if ok, limited := g.auth.check(r); !ok {
				if limited {
					http.Error(w, "too many failed logins; retry in a few seconds", http.StatusTooManyRequests)
					return
				}
				hdr.Set("WWW-Authenticate", `Basic realm="oxbroker status", charset="UTF-8"`)
				http.Error(w, "authentication required (admin.auth)", http.StatusUnauthorized)
				return
			}
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			if err := g.cross.Check(r); err != nil {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			if r.Header.Get(RequestHeader) == "" {
				http.Error(w, "a request that changes something must carry the "+RequestHeader+" header", http.StatusForbidden)
				return
			}
		default:
			hdr.Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a request's Host names this listener: its
// address, a loopback name or address, or a name of admin.hosts, with any
// port (an SSH tunnel may forward another local port).
func (g *Guard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "."), "["), "]"))
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return true
	}
	return slices.Contains(g.hosts, host)
}

// quoteHost quotes a Host header for a message, shortened.
func quoteHost(h string) string {
	if len(h) > 64 {
		h = h[:64] + "..."
	}
	return fmt.Sprintf("%q", h)
}

// authenticator checks admin.auth credentials. A bcrypt comparison takes
// tens of milliseconds, and a browser sends the password with every
// request (the page refreshes each second): the last credentials that
// passed are remembered as a hash, and compared in constant time first.
// Failures are limited: at most failBurst, then one per failEvery.
type authenticator struct {
	kind     string
	user     string
	token    [32]byte // bearer: sha256 of the token
	hash     []byte   // basic: bcrypt
	failures *failBucket

	mu   sync.Mutex // guards good
	good [32]byte   // sha256 of the last user:password bcrypt accepted; zero: none
}

func newAuthenticator(a config.AdminAuth) (*authenticator, error) {
	au := &authenticator{kind: a.Type, user: a.Username, failures: newFailBucket()}
	switch a.Type {
	case config.AdminAuthBearer:
		if a.Token.IsZero() {
			return nil, errors.New("admin.auth.token: required")
		}
		au.token = sha256.Sum256([]byte(a.Token.Reveal()))
	case config.AdminAuthBasic:
		au.hash = []byte(a.PasswordHash.Reveal())
		if _, err := bcrypt.Cost(au.hash); err != nil {
			return nil, errors.New("admin.auth.password_hash: not a bcrypt hash")
		}
	default:
		return nil, fmt.Errorf("admin.auth.type %q: must be bearer or basic", a.Type)
	}
	return au, nil
}

// check reports whether r carries good credentials; limited says that it
// was not judged because too many attempts failed lately.
func (a *authenticator) check(r *http.Request) (ok, limited bool) {
	user, secret, basic := r.BasicAuth()
	if !basic {
		scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || a.kind != config.AdminAuthBearer {
			return false, false // no credentials yet: the browser asks for them
		}
		secret = strings.TrimSpace(tok)
	}
	if !a.failures.allow() {
		return false, true
	}
	switch a.kind {
	case config.AdminAuthBearer:
		// A browser sends the token as the password of Basic, with any
		// user name.
		sum := sha256.Sum256([]byte(secret))
		ok = subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1
	case config.AdminAuthBasic:
		ok = basic && a.basic(user, secret)
	}
	if !ok {
		a.failures.fail()
	}
	return ok, false
}

func (a *authenticator) basic(user, password string) bool {
	sum := sha256.Sum256([]byte(user + "\x00" + password))
	a.mu.Lock()
	known := subtle.ConstantTimeCompare(sum[:], a.good[:]) == 1
	a.mu.Unlock()
	if known {
		return true
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) == 1
	// Compare the password whatever the user name, so that the time
	// taken does not tell whether the name was right.
	passOK := bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil
	if !userOK || !passOK {
		return false
	}
	a.mu.Lock()
	a.good = sum
	a.mu.Unlock()
	return true
}

// The failed logins the page takes, all callers together: failBurst at
// once, then one per failEvery. A guesser gets a few tries a second at
// most; the operator who mistyped waits a second.
const (
	failBurst = 10
	failEvery = time.Second
)

// failBucket is a token bucket of failed logins.
type failBucket struct {
	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

func newFailBucket() *failBucket { return &failBucket{tokens: failBurst, last: time.Now()} }

func (b *failBucket) refill() {
	now := time.Now()
	b.tokens = min(failBurst, b.tokens+float64(now.Sub(b.last))/float64(failEvery))
	b.last = now
}

// allow reports whether an attempt may be judged: a token is left.
func (b *failBucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	return b.tokens >= 1
}

// fail spends a token.
func (b *failBucket) fail() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	b.tokens = max(0, b.tokens-1)
}
