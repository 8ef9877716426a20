package proxy

import (
	"fmt"
	"net/http"

	"github.com/oxsecurity/oxbroker/config"
)

// ForwardedHeaders are the request headers forwarded to every site: what
// a Jira REST client needs, and nothing else. Every other header the
// caller sent is dropped before the site's credentials are set
// (jira.SetCredentials); a site adds names with allow.headers. Framing
// (Content-Length, Transfer-Encoding) is net/http's and is not a header
// here; hop-by-hop headers are removed by httputil.ReverseProxy.
//
//   - content negotiation: Accept, Accept-Language (Accept-Encoding is the
//     agent's own: it asks Jira for identity, upstreamEncoding);
//   - conditional requests and ranges (attachment downloads): If-Match,
//     If-None-Match, If-Modified-Since, If-Unmodified-Since, If-Range,
//     Range;
//   - the body: Content-Type, Content-Encoding, and Expect (100-continue,
//     so that Jira can refuse a large upload before it is sent);
//   - Jira's own: X-Atlassian-Token (no-check, which attachment uploads
//     and other multipart calls need), X-ExperimentalApi (opt-in to
//     experimental operations), X-Force-Accept-Language (honour
//     Accept-Language over the user's profile);
//   - User-Agent (defaultUserAgent when the caller sent none).
var ForwardedHeaders = []string{
	"Accept", "Accept-Language",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range",
	"Content-Type", "Content-Encoding", "Expect",
	"X-Atlassian-Token", "X-ExperimentalApi", "X-Force-Accept-Language",
	"User-Agent",
}

// forwarded is ForwardedHeaders by canonical name.
var forwarded = func() map[string]bool {
	m := make(map[string]bool, len(ForwardedHeaders))
	for _, h := range ForwardedHeaders {
		m[http.CanonicalHeaderKey(h)] = true
	}
	return m
}()

// headerAllowlist returns the canonical names a site forwards beyond
// ForwardedHeaders (allow.headers), refusing names config.CheckForwardHeader
// refuses. It returns nil when there are none.
func headerAllowlist(extra []string) (map[string]bool, error) {
	var m map[string]bool
	for i, h := range extra {
		if why := config.CheckForwardHeader(h); why != "" {
			return nil, fmt.Errorf("allow.headers[%d] %q: %s", i, h, why)
		}
		if m == nil {
			m = make(map[string]bool, len(extra))
		}
		m[http.CanonicalHeaderKey(h)] = true
	}
	return m, nil
}

// filterRequestHeader deletes from h every header the site does not
// forward. Go's server canonicalizes the names it reads, so a name that
// is not in canonical form (one with "_" or a byte outside a token, which
// textproto leaves as it came) matches nothing and is dropped too.
func (p *Proxy) filterRequestHeader(h http.Header) {
	for k := range h {
		if !forwarded[k] && !p.moreHeaders[k] {
			delete(h, k)
		}
	}
}
