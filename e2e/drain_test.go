package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oxsecurity/oxbroker/internal/testwait"
	"github.com/oxsecurity/oxbroker/jira/jiratest"
)

const downloadSize = 100 << 20

// slowDownload fetches an attachment through the gateway at about
// 25 MB/s, so that a signal sent after the first bytes lands mid-transfer,
// and returns the SHA-256 of what arrived. got counts bytes as they come.
func slowDownload(e *env, id string, got *atomic.Int64) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := e.getAttachment(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		n, err := resp.Body.Read(buf)
		h.Write(buf[:n])
		got.Add(int64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, resp.StatusCode, err
		}
		time.Sleep(time.Duration(n) * time.Second / (25 << 20))
	}
	return h.Sum(nil), resp.StatusCode, nil
}

// getAttachment asks the gateway for attachment id's content, as the
// connector does; the body is the caller's to read.
func (e *env) getAttachment(ctx context.Context, id string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+e.apiAddr+"/b/acme/jira/rest/api/3/attachment/content/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e.ConnectorToken)
	return http.DefaultClient.Do(req)
}

func syntheticSum(size int64) []byte {
	h := sha256.New()
	io.Copy(h, jiratest.SyntheticContent(size))
	return h.Sum(nil)
}

// download is a slowDownload running in the background.
type download struct {
	got  atomic.Int64
	done chan downloadResult
}

type downloadResult struct {
	sum    []byte
	status int
	err    error
}

// startDownload adds a 100 MiB attachment to the stand-in, starts
// downloading it through the gateway and returns once 4 MiB have arrived.
func startDownload(t *testing.T, e *env) *download {
	t.Helper()
	id := e.Jira.AddAttachment(e.Jira.AddIssue("DRN", "big file"), "big.bin", downloadSize)
	d := &download{done: make(chan downloadResult, 1)}
	go func() {
		sum, status, err := slowDownload(e, id, &d.got)
		d.done <- downloadResult{sum, status, err}
	}()
	waitBytes(t, &d.got, 4<<20)
	return d
}

// wait checks that the download completed with every byte intact.
func (d *download) wait(t *testing.T, what string) {
	t.Helper()
	r := <-d.done
	if r.err != nil || r.status != 200 || d.got.Load() != downloadSize || !bytes.Equal(r.sum, syntheticSum(downloadSize)) {
		t.Fatalf("download across %s: status %d, err %v, %d of %d bytes, checksum match %v",
			what, r.status, r.err, d.got.Load(), downloadSize, bytes.Equal(r.sum, syntheticSum(downloadSize)))
	}
}

func waitBytes(t *testing.T, got *atomic.Int64, n int64) {
	t.Helper()
	testwait.For(t, 20*time.Second, fmt.Sprintf("the first %d bytes of the download", n), func() bool { return got.Load() >= n })
}

// terminateDuringDownload sends p a SIGTERM while a 100 MiB download
// runs, checks that the download completes intact, and that p then exits
// 0.
func terminateDuringDownload(t *testing.T, e *env, p *proc) {
	t.Helper()
	d := startDownload(t, e)
	p.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t, p.name+" SIGTERM")
	p.terminated(t, 15*time.Second)
}

// TestDrainAgentSIGTERM: a 100 MiB download started before SIGTERM to the
// agent completes intact, and the agent then exits 0.
func TestDrainAgentSIGTERM(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e, _, a := newEnvUp(t, agentOpts{transport: tr})
			terminateDuringDownload(t, e, a)
		})
	}
}

// TestDrainGatewaySIGTERM: a 100 MiB download started before SIGTERM to
// the gateway completes intact; the agent reconnects to the restarted
// gateway and serves again.
func TestDrainGatewaySIGTERM(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			e, gw, a := newEnvUp(t, agentOpts{transport: tr})
			terminateDuringDownload(t, e, gw)
			a.waitOutput(t, "gateway asked us to move", 5*time.Second)

			e.startGateway()
			e.waitSessions(2, tr, 45*time.Second)
			if resp, b := e.jiraCall("GET", "/rest/api/3/myself", ""); resp.StatusCode != 200 {
				t.Fatalf("after the gateway restart: %d %s", resp.StatusCode, b)
			}
		})
	}
}
