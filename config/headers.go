package config

import "strings"

// CheckForwardHeader says why a request header name may not be added to a
// site's allow.headers, or returns "" when it may. It is the one rule for
// those names: config validation and the proxy both call it.
//
// A name must be an HTTP token (RFC 9110) without "_": some servers in
// front of Jira read "X_Forwarded_For" as "X-Forwarded-For", so names with
// "_" are never forwarded. Refused besides are the names that carry
// credentials (the site's own are set by the agent), that route or
// re-target a request (a front-end could let them bypass the allowlist),
// that belong to the broker, and the framing and hop-by-hop headers, which
// HTTP handles itself.
func CheckForwardHeader(name string) string {
	if name == "" {
		return "must not be empty"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '_' {
			return `must not contain "_" (some servers read it as "-"); such headers are never forwarded`
		} else if !isTokenByte(c) {
			return "must be a header name (letters, digits and !#$%&'*+-.^`|~)"
		}
	}
	lower := strings.ToLower(name)
	for _, p := range refusedHeaderPrefixes {
		if strings.HasPrefix(lower, p.prefix) {
			return p.why
		}
	}
	if why, ok := refusedHeaders[lower]; ok {
		return why
	}
	return ""
}

const (
	whyCredentials = "carries credentials or an identity and is never forwarded; the agent sets the site's own"
	whyRouting     = "says where a request comes from or goes, or changes its method or URL, and is never forwarded"
	whyBroker      = "is the broker's own and is never forwarded"
	whyFraming     = "is handled by HTTP itself and cannot be forwarded"
	whyEncoding    = "is set by the agent, which asks Jira for identity encoding so that it can read every answer"
)

// refusedHeaderPrefixes and refusedHeaders are in lower case.
var refusedHeaderPrefixes = []struct{ prefix, why string }{
	{"proxy-", whyCredentials},
	{"x-forwarded-", whyRouting},
	{"ox-broker-", whyBroker},
}

var refusedHeaders = map[string]string{
	"authorization":          whyCredentials,
	"cookie":                 whyCredentials,
	"x-remote-user":          whyCredentials,
	"remote-user":            whyCredentials,
	"x-ausername":            whyCredentials,
	"host":                   whyRouting,
	"forwarded":              whyRouting,
	"x-real-ip":              whyRouting,
	"x-client-ip":            whyRouting,
	"true-client-ip":         whyRouting,
	"x-original-url":         whyRouting,
	"x-original-uri":         whyRouting,
	"x-rewrite-url":          whyRouting,
	"x-http-method-override": whyRouting,
	"x-http-method":          whyRouting,
	"x-method-override":      whyRouting,
	"x-host":                 whyRouting,
	"x-http-host-override":   whyRouting,
	"connection":             whyFraming,
	"keep-alive":             whyFraming,
	"content-length":         whyFraming,
	"transfer-encoding":      whyFraming,
	"te":                     whyFraming,
	"trailer":                whyFraming,
	"upgrade":                whyFraming,
	"accept-encoding":        whyEncoding,
}

// isTokenByte reports whether c may appear in an HTTP token (RFC 9110
// tchar).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^`|~", c) >= 0
}
