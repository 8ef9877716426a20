package diag

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oxsecurity/oxbroker/brokerhttp"
	"github.com/oxsecurity/oxbroker/config"
	"github.com/oxsecurity/oxbroker/internal/clip"
	"github.com/oxsecurity/oxbroker/proxy"
)

// TokenExpiryWarning is how long before auth.expires the agent and the
// check start warning that a site's token expires.
const TokenExpiryWarning = 30 * 24 * time.Hour

// Paths of the Jira checks; {v} is the REST API version.
const (
	myselfPath      = "/rest/api/%s/myself"
	permissionsPath = "/rest/api/%s/mypermissions?permissions=BROWSE_PROJECTS,CREATE_ISSUES"
)

// jiraCaller sends the check's calls to Jira through a site's proxy.
type jiraCaller struct {
	p         *proxy.Proxy
	requestID string // the start of each call's request id
	userAgent string // "" is oxbroker-check
}

// get sends GET path through the proxy exactly as a request from the
// tunnel arrives: origin-form target, a request id, no credentials (the
// proxy adds them). The answer is read into memory.
func (j jiraCaller) get(ctx context.Context, path string) *http.Response {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil { // not reached: the paths are constants
		panic(err)
	}
	req.RequestURI = path
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", ifEmpty(j.userAgent, "oxbroker-check"))
	req.Header.Set(brokerhttp.HeaderRequestID, j.requestID+"-"+randomHex(4))
	w := &memoryWriter{header: make(http.Header)}
	rec := &brokerhttp.StatusRecorder{ResponseWriter: w}
	j.p.ServeHTTP(rec, req)
	status := rec.Status
	if status == 0 {
		status = http.StatusOK
	}
	return &http.Response{
		Status:     fmt.Sprintf("%03d %s", status, http.StatusText(status)),
		StatusCode: status,
		Header:     w.header,
		Body:       io.NopCloser(&w.body),
	}
}

// memoryWriter is an http.ResponseWriter that keeps the answer's headers
// and body; brokerhttp.StatusRecorder in front of it keeps the status.
type memoryWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (w *memoryWriter) Header() http.Header         { return w.header }
func (w *memoryWriter) WriteHeader(int)             {}
func (w *memoryWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *memoryWriter) Flush()                      {}

// brokerError returns the broker's own error in resp, if it is one.
func brokerError(resp *http.Response) (brokerhttp.Code, string) {
	code := brokerhttp.Code(resp.Header.Get(brokerhttp.HeaderError))
	if code == "" {
		return "", ""
	}
	var body brokerhttp.Body
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	return code, body.Error.Message
}

// brokerErrorOutcome words a broker error answered to a Jira check: the
// proxy classified the failure (its code and message); this adds the fix.
func brokerErrorOutcome(detail string, code brokerhttp.Code, msg string, site config.Site) outcome {
	cause := sentence(fmt.Sprintf("%s (%s)", trimPeriod(msg), code))
	switch code {
	case brokerhttp.UpstreamTLS:
		fix := "Set tls.ca_file to the CA that signed Jira's certificate."
		if site.TLS.CAFile != "" {
			fix = "Check that tls.ca_file (" + site.TLS.CAFile + ") holds the CA that signed Jira's certificate."
		}
		return lasting(failed(detail, cause, fix))
	case brokerhttp.UpstreamUnreachable:
		return failed(detail, cause, "Check the url's host name, DNS, and the firewall or proxy between this machine and Jira.")
	case brokerhttp.UpstreamTimeout:
		return failed(detail, cause, "Check that Jira is up and that the firewall or proxy lets this machine reach it.")
	case brokerhttp.PathNotAllowed:
		return failed(detail, cause, "Allow getCurrentUser (scope read:jira-user) in the site's allow: section.")
	}
	return failed(detail, cause, "Run the check again; if it keeps failing, report it to OX with this output.")
}

// checkCredentials calls myself with the site's credentials and says who
// the token is. It returns the REST API version that answered.
//
// light (the agent's probe) makes an allowlist that refuses the call a
// warning: the probe cannot judge the site, and the site is not at fault.
func checkCredentials(ctx context.Context, j jiraCaller, site config.Site, u *url.URL, light bool) (string, outcome) {
	version := "3"
	path := fmt.Sprintf(myselfPath, version)
	resp := j.get(ctx, path)
	if resp.StatusCode == http.StatusNotFound && resp.Header.Get(brokerhttp.HeaderError) == "" {
		// Jira Data Center before REST API 3.
		version = "2"
		path = fmt.Sprintf(myselfPath, version)
		resp = j.get(ctx, path)
	}
	detail := "GET " + path
	if code, msg := brokerError(resp); code != "" {
		o := brokerErrorOutcome(detail, code, msg, site)
		if light && code == brokerhttp.PathNotAllowed {
			o.status = StatusWarn
		}
		return version, o
	}
	jiraMsg := jiraMessage(resp)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		cause := "Jira refused the token (401 Unauthorized)."
		if reason := resp.Header.Get("X-Seraph-LoginReason"); strings.Contains(reason, "AUTHENTICATION_DENIED") {
			return version, lasting(failed(detail, "Jira locked the account after failed logins (it asks for a CAPTCHA).",
				"Log in to Jira once in a browser as this account to clear the CAPTCHA, then check auth.token."))
		}
		return version, lasting(failed(detail, cause, unauthorizedFix(site, u)))
	case http.StatusForbidden:
		return version, lasting(failed(detail, sentence("Jira refused the account access (403 Forbidden"+ifSet(jiraMsg, ": "+jiraMsg)+")"),
			"Give the account access to Jira: the Jira User role for a service account (Atlassian Admin > Directory > Service accounts), or a Jira licence for a person."))
	case http.StatusTooManyRequests:
		return version, warned(detail, "Jira is rate-limiting this account (429 Too Many Requests).",
			"Run the check again after a while ("+ifEmpty(resp.Header.Get("Retry-After"), "?")+" seconds).")
	case http.StatusNotFound:
		return version, lasting(failed(detail, fmt.Sprintf("No Jira REST API at %s (404 Not Found on versions 3 and 2).", site.URL),
			"Set url to the Jira base URL: https://jira.example.com for Data Center, https://api.atlassian.com/ex/jira/<cloudId> for a service account."))
	default:
		return version, failed(detail, sentence(fmt.Sprintf("Jira answered %s%s", resp.Status, ifSet(jiraMsg, ": "+jiraMsg))),
			"Check that url is the Jira base URL and that Jira is healthy, then run the check again.")
	}

	var me struct {
		DisplayName  string `json:"displayName"`
		Name         string `json:"name"`
		EmailAddress string `json:"emailAddress"`
		AccountType  string `json:"accountType"`
		Active       *bool  `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&me); err != nil {
		return version, lasting(failed(detail, "The answer to myself is not Jira's JSON, so url probably points at another web server.",
			"Set url to the Jira base URL (for a service account: https://api.atlassian.com/ex/jira/<cloudId>)."))
	}
	who := fmt.Sprintf("%q", ifEmpty(me.DisplayName, me.Name))
	switch me.AccountType {
	case "app":
		who += " (service account)"
	case "atlassian":
		who += " (Atlassian user account" + ifSet(me.EmailAddress, " "+me.EmailAddress) + ")"
	case "":
		if me.Name != "" {
			who += " (user " + me.Name + ")"
		}
	default:
		who += " (account type " + me.AccountType + ")"
	}
	detail = fmt.Sprintf("the token is %s, via REST API %s", who, version)
	if me.Active != nil && !*me.Active {
		return version, lasting(failed(detail, "Jira says the account is deactivated.", "Reactivate the account in Jira or Atlassian Admin, or use another account's token."))
	}
	if exp := site.Auth.Expires; !exp.IsZero() {
		switch left := time.Until(exp.Time); {
		case left <= 0:
			return version, warned(detail, fmt.Sprintf("auth.expires says the token expired on %s.", exp),
				"Create a new token, update auth.token and auth.expires.")
		case left < TokenExpiryWarning:
			return version, warned(detail, fmt.Sprintf("The token expires on %s (auth.expires), in %d days.", exp, int(left.Hours()/24)),
				"Create a new token before then and update auth.token and auth.expires.")
		}
	}
	return version, passed("%s", detail)
}

// unauthorizedFix says what to do about a refused Jira token.
func unauthorizedFix(site config.Site, u *url.URL) string {
	host := ""
	if u != nil {
		host = strings.ToLower(u.Hostname())
	}
	switch site.Auth.Type {
	case config.AuthServiceAccount:
		if strings.HasSuffix(host, ".atlassian.net") {
			return "Service-account tokens work only through https://api.atlassian.com/ex/jira/<cloudId>: set url to that, or use cloud_site."
		}
		return "Check auth.token: create a new API token for the service account in Atlassian Admin (Directory > Service accounts) with scopes read:jira-user, read:jira-work and write:jira-work."
	case config.AuthBasic:
		return "Check auth.token and auth.email: basic needs the Atlassian account's email and an API token made at id.atlassian.com."
	default:
		return "Check auth.token: bearer needs a Jira personal access token, made in Jira under Profile > Personal Access Tokens."
	}
}

// checkPermissions asks Jira whether the account may browse projects and
// create issues in at least one project.
func checkPermissions(ctx context.Context, j jiraCaller, site config.Site, version string) outcome {
	if version == "" {
		version = "3"
	}
	path := fmt.Sprintf(permissionsPath, version)
	detail := "GET " + path
	resp := j.get(ctx, path)
	if code, msg := brokerError(resp); code != "" {
		if code == brokerhttp.PathNotAllowed {
			return warned("not checked: the site's allowlist refuses GET "+fmt.Sprintf("/rest/api/%s/mypermissions", version),
				sentence("Permissions could not be checked because this site's allowlist refuses mypermissions: "+trimPeriod(msg)),
				"Allow getMyPermissions (scope read:jira-work) in the site's allow: section, or check the account's project permissions in Jira by hand.")
		}
		o := brokerErrorOutcome(detail, code, msg, site)
		o.status = StatusWarn
		return o
	}
	if resp.StatusCode != http.StatusOK {
		return warned(detail, sentence(fmt.Sprintf("Jira answered %s, so permissions could not be checked", resp.Status)),
			"Check the account's project permissions in Jira by hand.")
	}
	var perms struct {
		Permissions map[string]struct {
			HavePermission bool `json:"havePermission"`
		} `json:"permissions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&perms); err != nil || perms.Permissions == nil {
		return warned(detail, "Jira's answer to mypermissions is not the expected JSON.", "Check the account's project permissions in Jira by hand.")
	}
	var have, missing []string
	for _, k := range []string{"BROWSE_PROJECTS", "CREATE_ISSUES"} {
		if perms.Permissions[k].HavePermission {
			have = append(have, k)
		} else {
			missing = append(missing, k)
		}
	}
	const fix = "Give the account the Jira User role, and Browse Projects and Create Issues in the projects OX should use (Project settings > Permissions)."
	switch {
	case len(missing) == 0:
		return passed("%s granted (in at least one project)", strings.Join(have, ", "))
	case slices.Contains(missing, "BROWSE_PROJECTS"):
		return failed("missing "+strings.Join(missing, ", "), "The account may not browse any project, so OX can neither read nor create issues.", fix)
	default:
		return warned("missing "+strings.Join(missing, ", "), "The account may browse projects but create issues in none, so OX cannot open tickets.", fix)
	}
}

// jiraMessage returns the first error message of a Jira error body,
// short. The proxy removed the credential from it; so does
// scrubResults.
func jiraMessage(resp *http.Response) string {
	if resp.StatusCode < 300 {
		return ""
	}
	var body struct {
		ErrorMessages []string `json:"errorMessages"`
		Message       string   `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil {
		return ""
	}
	msg := body.Message
	if len(body.ErrorMessages) > 0 {
		msg = body.ErrorMessages[0]
	}
	return clip.String(trimPeriod(strings.TrimSpace(msg)), 160)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
