package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"time"
)

// NewBulkClient returns an HTTP client for large transfers, with large
// buffers and no compression, so that the client is not what limits them.
func NewBulkClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression: true,
		ReadBufferSize:     256 << 10,
		WriteBufferSize:    256 << 10,
		MaxIdleConns:       4,
	}}
}

// Transfer is the outcome of one download or upload.
type Transfer struct {
	Bytes   int64
	Elapsed time.Duration
}

// MBps returns the transfer's rate in MB/s (10⁶ bytes per second).
func (t Transfer) MBps() float64 { return float64(t.Bytes) / 1e6 / t.Elapsed.Seconds() }

// Download GETs url with header (see SetHeader) and reads the body to
// the end; it fails unless the status is 200 and the body has want bytes.
func Download(ctx context.Context, c *http.Client, url string, header map[string]string, want int64) (Transfer, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return Transfer{}, err
	}
	SetHeader(req, header)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return Transfer{}, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	t := Transfer{Bytes: n, Elapsed: time.Since(start)}
	switch {
	case err != nil:
		return t, fmt.Errorf("download: %w after %d bytes", err, n)
	case resp.StatusCode != 200:
		return t, fmt.Errorf("download: status %d", resp.StatusCode)
	case n != want:
		return t, fmt.Errorf("download: got %d bytes, want %d", n, want)
	}
	return t, nil
}

// SetHeader sets header on req; a "Host" becomes req.Host, which is what
// net/http's client sends (it ignores a Host in req.Header).
func SetHeader(req *http.Request, header map[string]string) {
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
}

// Upload is a multipart/form-data body with one file in the field "file",
// as Jira's add-attachment call takes it, built once and sent many times.
type Upload struct {
	body        []byte
	contentType string
	FileSize    int64
}

// NewUpload builds an upload of a file of size bytes.
func NewUpload(size int64) (*Upload, error) {
	var b bytes.Buffer
	b.Grow(int(size) + 1024)
	mw := multipart.NewWriter(&b)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="bench.bin"`)
	h.Set("Content-Type", "application/octet-stream")
	w, err := mw.CreatePart(h)
	if err != nil {
		return nil, err
	}
	// Content that does not compress and never holds the boundary.
	chunk := make([]byte, 64<<10)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range chunk {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		chunk[i] = byte(x)
	}
	for left := size; left > 0; left -= int64(len(chunk)) {
		if _, err := w.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return &Upload{body: b.Bytes(), contentType: mw.FormDataContentType(), FileSize: size}, nil
}

// Send POSTs the upload to url with header (see SetHeader); it fails unless
// the status is 200. Bytes counts the file, not the multipart framing.
func (u *Upload) Send(ctx context.Context, c *http.Client, url string, header map[string]string) (Transfer, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(u.body))
	if err != nil {
		return Transfer{}, err
	}
	SetHeader(req, header)
	req.Header.Set("Content-Type", u.contentType)
	req.Header.Set("X-Atlassian-Token", "no-check")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return Transfer{}, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body) // so that the connection is reused
	t := Transfer{Bytes: u.FileSize, Elapsed: time.Since(start)}
	if resp.StatusCode != 200 {
		return t, fmt.Errorf("upload: status %d: %s", resp.StatusCode, msg)
	}
	return t, nil
}
