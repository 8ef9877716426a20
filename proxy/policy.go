package proxy

import (
	"errors"
	"net/http"
	"strings"
)

// Policy decides which requests a Proxy forwards. The Proxy calls Allow
// only for paths that passed CheckPath, with the decoded path (relative to
// the site's base URL, so "/rest/api/3/myself" whatever the base).
//
// Allow returns nil to forward the request, or an error whose message
// says why not; the message is shown to the caller after the method and
// path, so it must hold nothing secret. Allow is called concurrently.
type Policy interface {
	Allow(method, cleanPath string) error
}

// FirstCutPolicy is the Policy of the first cut, until the scope-based
// allowlist of docs/design.md (invariant 3) lands. It forwards only:
//
//	GET  /rest/api/{2,3}/myself
//	GET  /rest/api/{2,3}/serverInfo
//	GET  /rest/api/{2,3}/issue/<anything below>
//	GET  /rest/api/{2,3}/search/jql
//	GET  /rest/api/2/search
//	POST /rest/api/{2,3}/issue
//	POST /rest/api/{2,3}/search/jql
type FirstCutPolicy struct{}

var _ Policy = FirstCutPolicy{}

var errNotInFirstCut = errors.New("not in this broker's allowlist")

// Allow implements Policy.
func (FirstCutPolicy) Allow(method, cleanPath string) error {
	version, rest, ok := cutAPIVersion(cleanPath)
	if !ok {
		return errNotInFirstCut
	}
	switch method {
	case http.MethodGet:
		switch {
		case rest == "/myself", rest == "/serverInfo", rest == "/search/jql":
			return nil
		case rest == "/search" && version == "2":
			return nil
		case strings.HasPrefix(rest, "/issue/") && len(rest) > len("/issue/"):
			return nil
		}
	case http.MethodPost:
		if rest == "/issue" || rest == "/search/jql" {
			return nil
		}
	}
	return errNotInFirstCut
}

// cutAPIVersion splits "/rest/api/3/issue" into "3" and "/issue".
func cutAPIVersion(p string) (version, rest string, ok bool) {
	rest, ok = strings.CutPrefix(p, "/rest/api/")
	if !ok || len(rest) < 2 || rest[1] != '/' || (rest[0] != '2' && rest[0] != '3') {
		return "", "", false
	}
	return rest[:1], rest[1:], true
}
