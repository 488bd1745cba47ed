package dashboard_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// screenshotPath is where TestBrowserShowsQueues leaves its screenshot
// (gitignored), for a person to look at.
const screenshotPath = "testdata/screenshot.png"

// browser returns the Chromium or Chrome that scripts/browser.sh installs,
// or skips the test saying why there is none.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium or Chrome on PATH, and scripts/browser.sh install (run by make test) could not install Debian's chromium; skipping the dashboard browser test")
	return ""
}

// TestBrowserShowsQueues logs in to the dashboard in a real headless browser
// and waits until Asynqmon's home page lists endcall's three queues.
func TestBrowserShowsQueues(t *testing.T) {
	t.Parallel()
	execPath := browser(t)
	base, _ := setup(t, true)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Containers often have a tiny /dev/shm, which crashes Chrome.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Every request of the page, the app and its API calls, carries the
	// Basic credentials (TestBasicAuth covers the refusals).
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting %s: %v", execPath, err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	const queuesShown = `["critical", "default", "webhooks"].every(q =>
		[...document.querySelectorAll("table td, table th")].some(e => e.textContent.trim() === q))`
	err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/monitoring/"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](queuesShown, chromedp.WithPollingTimeout(45*time.Second))(ctx, tg)
			return err
		}),
	)
	if err != nil {
		text, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("waiting for the queues critical, default and webhooks on the dashboard: %v; page text: %.500q", err, text)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking the screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(screenshotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(screenshotPath)
	t.Logf("dashboard screenshot: %s", abs)
}
