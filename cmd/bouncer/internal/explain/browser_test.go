package explain

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/bouncer-mail/bouncer/classify"
)

// chromium returns the browser to drive: $BOUNCER_CHROMIUM, else Debian's
// chromium on the PATH. Without one the test is skipped, except under CI.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BOUNCER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium on the PATH: install Debian's chromium package (apt-get install chromium; .ci/run does) or set BOUNCER_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifacts returns the directory the screenshots go to: $BOUNCER_ARTIFACTS,
// else .ci/artifacts at the module root (gitignored; CI keeps it).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BOUNCER_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(".")
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatal("artifacts: no go.mod above the test's directory")
			}
			root = parent
		}
		dir = filepath.Join(root, ".ci", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium with the flags this machine needs (no
// network: background networking and QUIC off) and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	var out bytes.Buffer
	// Registered first, so it runs last: after the allocator's cancel has
	// waited for the goroutine that copies chromium's output into out.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium's output:\n%s", out.String())
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
		chromedp.CombinedOutput(&out),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	return bctx
}

// tab opens a tab with JavaScript off: the page must work without it.
func tab(t *testing.T, bctx context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("turn JavaScript off: %v", err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// submit clicks the Explain button and waits for the answer page.
func submit(t *testing.T, ctx context.Context, button string) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(button)))
	if err != nil {
		t.Fatalf("click #%s: %v", button, err)
	}
	if resp.Status != 200 {
		t.Fatalf("click #%s: HTTP %d, want 200", button, resp.Status)
	}
}

// text returns the text the page shows in element #id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("read #%s: %v", id, err)
	}
	return s
}

// The check: paste a seed-page bounce into the page in a real
// browser, see the category and the advice; keep a screenshot.
func TestBrowser(t *testing.T) {
	t.Parallel()
	bctx := browser(t)
	c := classify.New(classify.Options{})

	t.Run("paste", func(t *testing.T) {
		srv := server(t, New(c, nil, Options{}))
		ctx := tab(t, bctx)
		// Page 000's Exim example: an auto-reply refused with "553 5.7.1
		// Not an open relay" (classify/testdata keeps it with addresses).
		seed := readFixture(t, "relay_denied-seed-autoreply.eml")
		if err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("message")),
			chromedp.Focus(chromedp.ID("message")),
		); err != nil {
			t.Fatal(err)
		}
		// Insert the text as a paste does, in one piece.
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: string(seed)}); err != nil {
			t.Fatalf("paste: %v", err)
		}
		submit(t, ctx, "explain-button")
		got := text(t, ctx, "results")
		rec := c.Records(seed)[0]
		e := classify.Explain(&rec)
		for _, want := range []string{"relay_denied", "553", "5.7.1", string(e.Fault), e.Todo, rec.Rule} {
			if !strings.Contains(got, want) {
				t.Errorf("after pasting the seed bounce, the results lack %q:\n%s", want, got)
			}
		}
		// The inline style sheet applied: the CSP hash matched.
		styles, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.CSS("article.result")))
		if err != nil {
			t.Fatal(err)
		}
		width := ""
		for _, s := range styles {
			if s.Name == "border-left-width" {
				width = s.Value
			}
		}
		if width != "6px" {
			t.Errorf("result card border-left-width = %q, want 6px: the style sheet was not applied", width)
		}
		screenshot(t, ctx, "explain-paste-relay_denied.png")
	})

	t.Run("upload", func(t *testing.T) {
		srv := server(t, New(c, nil, Options{}))
		ctx := tab(t, bctx)
		// The same 553, but a dead mailbox this time: the text decides.
		path, err := filepath.Abs(filepath.Join(fixtures, "mailbox_unknown-exim-553-crlf.eml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("file")),
			chromedp.SetUploadFiles(chromedp.ID("file"), []string{path}),
		); err != nil {
			t.Fatal(err)
		}
		submit(t, ctx, "explain-button")
		got := text(t, ctx, "results")
		raw := readFixture(t, "mailbox_unknown-exim-553-crlf.eml")
		rec := c.Records(raw)[0]
		for _, want := range []string{"mailbox_unknown-exim-553-crlf.eml", "mailbox_unknown", "553", classify.Explain(&rec).Todo} {
			if !strings.Contains(got, want) {
				t.Errorf("after uploading a 553 mailbox_unknown bounce, the results lack %q:\n%s", want, got)
			}
		}
		screenshot(t, ctx, "explain-upload-mailbox_unknown.png")
	})

	t.Run("token", func(t *testing.T) {
		srv := server(t, New(c, nil, Options{Token: testToken}))
		ctx := tab(t, bctx)
		if err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), testToken),
		); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.RunResponse(ctx, chromedp.Submit(chromedp.ID("token"))); err != nil {
			t.Fatalf("log in: %v", err)
		}
		if err := chromedp.Do(ctx,
			chromedp.WaitVisible(chromedp.ID("message")),
			chromedp.Focus(chromedp.ID("message")),
		); err != nil {
			t.Fatalf("after logging in: %v", err)
		}
		raw := readFixture(t, "blocked-yahoo-tss.eml")
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: string(raw)}); err != nil {
			t.Fatal(err)
		}
		submit(t, ctx, "explain-button")
		if got := text(t, ctx, "results"); !strings.Contains(got, "blocked") {
			t.Errorf("logged in, the results lack the category blocked:\n%s", got)
		}
		page, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(page, testToken) {
			t.Errorf("the page shows the token")
		}
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(".logout button"))); err != nil {
			t.Fatalf("log out: %v", err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
			t.Errorf("after logging out, no login form: %v", err)
		}
	})
}
