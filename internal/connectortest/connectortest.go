// Package connectortest makes the calls of OX's Jira connector to a
// gateway's API, for tests: a request with the connector's bearer token,
// and the whole answer read.
package connectortest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Call sends method url (its path as written: nothing cleans it) with
// token as the bearer (none when ""), header, and body (none when "";
// JSON otherwise), and returns the response with its body read whole.
// Errors name the call.
func Call(ctx context.Context, c *http.Client, method, url, token string, header http.Header, body string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return resp, b, nil
}
