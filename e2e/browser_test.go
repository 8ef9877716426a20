package e2e

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshots, when set, writes the status pages' screenshots into
// docs/images (go test ./e2e -run TestStatusPages -screenshots); without
// it they go to the test's temporary directory.
var screenshots = flag.Bool("screenshots", false, "write the status pages' screenshots into docs/images")

// chromium is Debian's chromium (scripts/need.sh installs it for make
// test); the tests that need it skip without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: install Debian's chromium package (make test does, with scripts/need.sh)")
	return ""
}

// browser is one headless Chromium for a test, with one tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// newBrowser starts headless Chromium with the flags this machine needs
// as root (no sandbox, no GPU, no network of its own) and a fresh
// profile, and stops it when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that its start-up is not counted in the
	// first wait.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// do runs actions with a time limit.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition in the page until it holds, and
// returns how long that took; it fails the test after timeout.
func (b *browser) waitFor(what, cond string, timeout time.Duration) time.Duration {
	b.t.Helper()
	took, ok := b.shows(cond, timeout)
	if !ok {
		html := eval[string](b, "document.body ? document.body.innerText : ''")
		b.t.Fatalf("the page did not show %s within %s (%s); it shows:\n%s", what, timeout, cond, html)
	}
	return took
}

// shows waits until cond holds on the page, at most timeout, and says how
// long it took and whether it held.
func (b *browser) shows(cond string, timeout time.Duration) (time.Duration, bool) {
	b.t.Helper()
	start := time.Now()
	for {
		if eval[bool](b, "!!("+cond+")") {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the whole page as name (a PNG) in docs/images with
// -screenshots when forDocs, else in the test's temporary directory, and
// returns the path.
func (b *browser) screenshot(name string, forDocs bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := b.t.TempDir()
	if *screenshots && forDocs {
		dir = filepath.Join("..", "docs", "images")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}
