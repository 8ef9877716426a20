// Package brokerhttp holds the HTTP conventions that the agent and the
// gateway share: the Ox-Broker-* header names, the error codes of the
// contract (docs/design.md, "Connector API") and the JSON error body.
//
// Errors made by the broker itself carry the header Ox-Broker-Error and the
// body {"error":{"code":...,"message":...,"request_id":...}}. Messages are
// written for the person calling the API and must never contain a secret:
// callers pass a message they composed, not err.Error() of an internal cause.
package brokerhttp

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Header names on the connector API and on tunnel streams.
const (
	HeaderError     = "Ox-Broker-Error"
	HeaderRequestID = "Ox-Broker-Request-Id"
	HeaderSite      = "Ox-Broker-Site"
	HeaderOp        = "Ox-Broker-Op" // an operation of the agent itself (check), set only by the gateway
	// HeaderPublicBase is the URL under which the connector reached the
	// gateway's API (public_url, or the request's scheme and host), set
	// only by the gateway: the agent rewrites Jira's links to it.
	HeaderPublicBase = "Ox-Broker-Public-Base"
)

// OpCheck is the Ox-Broker-Op value with which the gateway asks the agent
// for a remote check of the site named by Ox-Broker-Site. Only the gateway
// sets Ox-Broker-* headers toward the agent: it strips every one a
// connector sends on /b/ routes.
const OpCheck = "check"

// Code is one of the broker's error codes.
type Code string

// The error codes of the contract.
const (
	Unauthorized        Code = "unauthorized"
	TooManyFailures     Code = "too_many_failures"
	UnknownBroker       Code = "unknown_broker"
	BrokerOffline       Code = "broker_offline"
	UnknownSite         Code = "unknown_site"
	PathNotAllowed      Code = "path_not_allowed"
	BadRequest          Code = "bad_request"
	TooLarge            Code = "too_large"
	UpstreamUnreachable Code = "upstream_unreachable"
	UpstreamTLS         Code = "upstream_tls"
	UpstreamTimeout     Code = "upstream_timeout"
	Overloaded          Code = "overloaded"
)

// Status returns the HTTP status the contract gives a code.
func (c Code) Status() int {
	switch c {
	case Unauthorized:
		return http.StatusUnauthorized
	case TooManyFailures:
		return http.StatusTooManyRequests
	case UnknownBroker, UnknownSite:
		return http.StatusNotFound
	case PathNotAllowed:
		return http.StatusForbidden
	case BadRequest:
		return http.StatusBadRequest
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case UpstreamTimeout:
		return http.StatusGatewayTimeout
	case Overloaded:
		return http.StatusServiceUnavailable
	default: // BrokerOffline, UpstreamUnreachable, UpstreamTLS
		return http.StatusBadGateway
	}
}

// Body is the JSON error body.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the content of Body.
type Detail struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// WriteError writes a broker error response. requestID may be empty.
func WriteError(w http.ResponseWriter, code Code, message, requestID string) {
	b, _ := json.Marshal(Body{Error: Detail{Code: code, Message: message, RequestID: requestID}})
	b = append(b, '\n')
	h := w.Header()
	h.Set(HeaderError, string(code))
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	if requestID != "" {
		h.Set(HeaderRequestID, requestID)
	}
	w.WriteHeader(code.Status())
	w.Write(b)
}

// maxPublicBase bounds the length of a public base URL.
const maxPublicBase = 512

// CheckPublicBase reports whether s can be the public base of the
// connector API (HeaderPublicBase, the gateway's public_url): an absolute
// http or https URL of at most 512 bytes, without user information, query
// or fragment, and without a trailing "/", such as
// https://broker.ox.security or https://ox.example/broker. It allows only
// letters, digits and -._~:/[]%, which need no escaping in a JSON string
// or a header value, since the agent writes it into both.
func CheckPublicBase(s string) error {
	if len(s) > maxPublicBase {
		return errors.New("must be at most 512 characters long")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return errors.New("must be an absolute http or https URL, like https://broker.ox.security")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("must not hold user information, a query or a fragment")
	case strings.HasSuffix(s, "/"):
		return errors.New(`must not end with "/"`)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:/[]%", c) >= 0) {
			return errors.New("may hold only letters, digits and -._~:/[]%")
		}
	}
	return nil
}

// SiteURL is the public URL of a site's Jira on the connector API: what
// a connector calls, followed by Jira's path.
func SiteURL(publicBase, broker, site string) string {
	return publicBase + "/b/" + broker + "/" + site
}
