// Package proxy is the agent's per-site reverse proxy to Jira: every Jira
// API call that arrives over the tunnel is checked, given the site's
// credentials and forwarded to the site's upstream, and Jira's answer is
// streamed back.
//
// A Proxy is an http.Handler for one config.Site. For each request it, in
// this order:
//
//  1. refuses, with 400 bad_request, a request target that is not a path
//     (absolute-form, authority-form, "*"), a request carrying both
//     Content-Length and Transfer-Encoding, a protocol upgrade, and a path
//     that CheckPath rejects (traversal, encoded slashes, backslashes, NUL,
//     control characters, double encoding, path parameters, anything that
//     path.Clean would change);
//  2. asks the Policy whether the method and the decoded path may be
//     forwarded, and refuses with 403 path_not_allowed if not;
//  3. refuses with 413 too_large a Content-Length over the site's max_body
//     and limits a body of unknown length to max_body while it streams;
//  4. waits a short, bounded time for one of the site's max_concurrent
//     upstream slots, and refuses with 503 overloaded if none frees up;
//  5. rewrites the request onto the configured upstream (scheme and host
//     from config only, base path + the checked path, query kept),
//     forwards only the request headers a Jira client needs
//     (ForwardedHeaders, plus the site's allow.headers; never a name with
//     "_"), so that the caller's Authorization, Cookie, Proxy-*,
//     Forwarded, X-Forwarded-*, identity, override and Ox-Broker-* headers
//     and its trailers are all dropped, asks for identity encoding, and
//     only then sets the site's credentials with jira.SetCredentials;
//  6. streams Jira's response back without Set-Cookie (a Jira session
//     cookie is as good as the token, and the token never leaves the
//     customer network) and without Ox-Broker-* headers (so that
//     Ox-Broker-Error always means the broker made the response), with
//     every form of the site's credential replaced wherever Jira reflects
//     it, and Jira's links to its REST API rewritten to the gateway's
//     public URL of the site (response.go).
//
// Nothing reaches Jira before steps 1 to 4 have passed. Failures to talk
// to Jira are mapped to the contract's error codes in one place (classify):
// upstream_unreachable, upstream_tls, upstream_timeout, too_large. Jira's
// own responses, errors and 429s included, pass through with only the
// changes of step 6.
//
// Every request, refused or forwarded, gives one audit line at info level
// with the request id, site, method, path, status, error code, bytes and
// duration. Headers, query strings and tokens are never logged.
package proxy
