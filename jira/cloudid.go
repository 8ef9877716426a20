package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxTenantInfo bounds how much of a tenant_info answer is read. The real
// document is a few dozen bytes; anything near the limit is not Atlassian.
const maxTenantInfo = 64 << 10

// CloudSiteURL returns the base URL of a Jira Cloud site given the way
// users write it: "acme", "acme.atlassian.net" or "https://acme.atlassian.net"
// all give https://acme.atlassian.net. Any other full URL with an http or
// https scheme (a stand-in on 127.0.0.1, another Atlassian cloud) is taken as
// it is, reduced to scheme and host; it may not carry a path, query or user
// information, since the Cloud ID endpoint lives at the root of the site.
func CloudSiteURL(site string) (*url.URL, error) {
	s := strings.TrimSpace(site)
	if s == "" {
		return nil, errors.New("cloud site is empty")
	}
	if strings.Contains(s, "://") {
		return siteFromURL(site, s)
	}
	name := strings.ToLower(strings.TrimSuffix(s, "/"))
	name = strings.TrimSuffix(name, ".atlassian.net")
	if !isDNSLabel(name) {
		return nil, fmt.Errorf("cloud site %q: want a site name such as acme, acme.atlassian.net or https://acme.atlassian.net", site)
	}
	return &url.URL{Scheme: "https", Host: name + ".atlassian.net"}, nil
}

func siteFromURL(site, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("cloud site %q: %w", site, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("cloud site %q: scheme must be https or http", site)
	case u.Host == "":
		return nil, fmt.Errorf("cloud site %q: no host", site)
	case u.User != nil:
		// A URL with user information would be a place for credentials,
		// and tenant_info must be fetched without any.
		return nil, fmt.Errorf("cloud site %q: must not contain user information", site)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("cloud site %q: must not have a path (got %q)", site, u.Path)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("cloud site %q: must not have a query or fragment", site)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// isDNSLabel reports whether s is a valid lower-case DNS label, which is
// what the name of a *.atlassian.net site is.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// CloudURL is the base URL of the Jira of Cloud ID id under Atlassian's
// API gateway api (https://api.atlassian.com): api/ex/jira/id, the URL
// service-account tokens work through.
func CloudURL(api, id string) string {
	return strings.TrimRight(api, "/") + "/ex/jira/" + id
}

// DiscoverCloudID reads the Cloud ID of a Jira Cloud site (written as
// CloudSiteURL accepts it) from <site>/_edge/tenant_info, the endpoint
// Atlassian documents for this. The endpoint needs no authentication, and
// none is sent: the request carries no Authorization header, and client
// (http.DefaultClient when nil) must not add one or cookies either, so that
// no Jira credential goes to a URL that is only used for discovery. A
// redirect to another host (or scheme) is an error, never followed.
func DiscoverCloudID(ctx context.Context, client *http.Client, site string) (string, error) {
	base, err := CloudSiteURL(site)
	if err != nil {
		return "", err
	}
	if client == nil {
		client = http.DefaultClient
	}
	// A redirect is followed only on the site's own host: a tenant_info
	// that sends the broker elsewhere would have it take another site's
	// Cloud ID, or call a host of the redirector's choosing.
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != base.Host || req.URL.Scheme != base.Scheme {
			return fmt.Errorf("redirected to %s://%s, which is not %s", req.URL.Scheme, req.URL.Host, base.Host)
		}
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		return nil
	}
	client = &c
	endpoint := base.JoinPath("_edge", "tenant_info").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return "", fmt.Errorf("cloud id: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("cloud id: %w", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cloud id: GET %s: status %s", endpoint, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTenantInfo+1))
	if err != nil {
		return "", fmt.Errorf("cloud id: read %s: %w", endpoint, err)
	}
	if len(body) > maxTenantInfo {
		return "", fmt.Errorf("cloud id: GET %s: response larger than %d bytes", endpoint, maxTenantInfo)
	}
	var info struct {
		CloudID string `json:"cloudId"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("cloud id: GET %s: response is not JSON: %w", endpoint, err)
	}
	switch {
	case info.CloudID == "":
		return "", fmt.Errorf("cloud id: GET %s: response has no cloudId", endpoint)
	case !isUUID(info.CloudID):
		return "", fmt.Errorf("cloud id: GET %s: cloudId %q is not a UUID", endpoint, info.CloudID)
	}
	return info.CloudID, nil
}

// isUUID reports whether s has the 8-4-4-4-12 hex form of a Cloud ID.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}
