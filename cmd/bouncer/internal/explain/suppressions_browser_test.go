package explain

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bouncer-mail/bouncer/store"
)

// layoutJS measures, in the browser, every word the page shows (a run
// without white space): a word whose text goes on to a new line between
// two letters or digits is broken mid-letter. A word may wrap after
// punctuation (a hyphen, "?" in a URL) and at the <wbr> seams the page
// marks, which end a text node. It also finds every table cell narrower
// than its longest word, every table wider than its section, and whether
// the page is wider than the window.
const layoutJS = `(() => {
  const out = {words: 0, broken: [], narrow: [], wide: [], pageWidth: document.documentElement.scrollWidth,
    windowWidth: document.documentElement.clientWidth};
  const range = document.createRange();
  const skip = 'head,style,script,option,select,textarea';
  const alnum = /[\p{L}\p{N}]/u;
  const top = (n, i) => {
    range.setStart(n, i);
    range.setEnd(n, i + 1);
    const r = range.getClientRects()[0];
    return r ? r.top : NaN;
  };
  const walk = (root, fn) => {
    const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      if (!n.parentElement || n.parentElement.closest(skip)) continue;
      const re = /\S+/g;
      let m;
      while ((m = re.exec(n.data))) {
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0.5);
        fn(m[0], rects, n, m.index);
      }
    }
  };
  const where = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
  walk(document.body, (word, rects, n, at) => {
    out.words++;
    if (rects.length < 2) return;
    for (let i = 1; i < word.length; i++) {
      if (alnum.test(word[i - 1]) && alnum.test(word[i]) && top(n, at + i - 1) !== top(n, at + i)) {
        out.broken.push(word.slice(0, i) + '/' + word.slice(i) + ' in ' + where(n.parentElement));
        return;
      }
    }
  });
  for (const cell of document.querySelectorAll('td, th')) {
    const cs = getComputedStyle(cell);
    const inner = cell.getBoundingClientRect().width - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    let longest = 0, word = '';
    walk(cell, (w, rects) => {
      if (rects.length !== 1) return; // wrapped at punctuation: its parts fit
      if (rects[0].width > longest) { longest = rects[0].width; word = w; }
    });
    if (longest > inner + 0.5) out.narrow.push(word + ': ' + longest.toFixed(1) + ' px in a cell of ' + inner.toFixed(1));
  }
  for (const t of document.querySelectorAll('table')) {
    const box = t.parentElement.getBoundingClientRect(), r = t.getBoundingClientRect();
    if (r.right > box.right + 0.5) out.wide.push(where(t) + ' ' + r.width.toFixed(0) + ' px in ' + box.width.toFixed(0));
  }
  return out;
})()`

type layout struct {
	Words       int      `json:"words"`
	Broken      []string `json:"broken"`
	Narrow      []string `json:"narrow"`
	Wide        []string `json:"wide"`
	PageWidth   int      `json:"pageWidth"`
	WindowWidth int      `json:"windowWidth"`
}

// checkLayout opens u at 1280 px, keeps a screenshot and fails for any
// word broken mid-letter, any cell narrower than its longest word, and a
// page wider than the window. want is text the page must show (so an
// error page does not pass).
func checkLayout(t *testing.T, ctx context.Context, u, shot string, want ...string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(u), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	screenshot(t, ctx, shot)
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: the page lacks %q", u, w)
		}
	}
	l, err := chromedp.Run(ctx, chromedp.Evaluate[layout](layoutJS))
	if err != nil {
		t.Fatalf("measure %s: %v", u, err)
	}
	if l.Words < 50 {
		t.Errorf("%s: measured %d words, want a page full of them", u, l.Words)
	}
	if len(l.Broken) > 0 {
		t.Errorf("%s at 1280 px: %d words broken mid-letter: %q", u, len(l.Broken), l.Broken)
	}
	if len(l.Narrow) > 0 {
		t.Errorf("%s at 1280 px: cells narrower than their longest word: %q", u, l.Narrow)
	}
	if len(l.Wide) > 0 {
		t.Errorf("%s at 1280 px: tables wider than their section: %q", u, l.Wide)
	}
	if l.PageWidth > l.WindowWidth {
		t.Errorf("%s at 1280 px: the page is %d px wide, the window %d", u, l.PageWidth, l.WindowWidth)
	}
}

// The check: the suppressions page, a suppression's evidence and
// the lookup page at 1280 px, with long realistic data, and 0 words
// broken; then an undo from the page, in the browser.
func TestSuppressionsBrowser(t *testing.T) {
	t.Parallel()
	bctx := browser(t)
	r := newReviewDB(t)
	long := []string{
		"alexandra.konstantinopoulou-vanderberg@mail.international-engineering-consultancy.example.co.uk",
		"customer-service-notifications+weekly-digest@subsidiary.example-corporation.com",
		"jean-baptiste.de-la-fontaine@correo.universidad-politecnica.example.es",
	}
	rules := []string{"text:mailbox_unknown:recipient name is not recognized",
		"text:domain_unknown:does not accept mail+destination_null_mx", "text:mailbox_unknown:user unknown+temporary+given_up"}
	for i, a := range long {
		r.save(t, uint32(i+1), a, rules[i])
	}
	for i := range 12 {
		r.save(t, uint32(100+i), fmt.Sprintf("subscriber.number.%d@newsletter-readers.example.org", i), rules[i%3])
	}
	const byHand = "maria-fernanda.rodriguez-castellanos@correo.universidad-politecnica.example.es"
	if _, _, err := r.db.Suppress(t.Context(), store.SuppressRequest{Address: byHand, ListID: longList, By: "support-team@example-corporation.com",
		Note: "asked by phone to stop the weekly digest (ticket INC-2025-0004711)"}); err != nil {
		t.Fatal(err)
	}
	srv := server(t, New(nil, r.db, Options{}))
	ctx := tab(t, bctx)
	id := r.id(t, long[1])

	checkLayout(t, ctx, srv.URL+"/suppressions", "suppressions-1280.png", "16 suppressions", "recipient name is not recognized")
	checkLayout(t, ctx, fmt.Sprintf("%s/suppressions/%d", srv.URL, id), "suppression-evidence-1280.png",
		"The server's words", "support.google.com", "weekly-digest@")
	checkLayout(t, ctx, fmt.Sprintf("%s/suppressions/%d", srv.URL, r.id(t, byHand)), "suppression-evidence-hand-1280.png",
		"Added by hand", "INC-2025-0004711")
	checkLayout(t, ctx, srv.URL+"/lookup?address="+url.QueryEscape(long[0]), "lookup-1280.png",
		"History of", "Category", "550", "NoSuchUser")
	checkLayout(t, ctx, srv.URL+"/suppressions/undo?rule="+url.QueryEscape(rules[0]), "suppressions-bulk-preview-1280.png",
		"would be lifted")

	// Undo from the page: fill the reason, submit the form.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/suppressions/%d", srv.URL, id)),
		chromedp.WaitVisible(chromedp.ID("why")),
		chromedp.SendKeys(chromedp.ID("why"), "address works again, confirmed with the customer"),
		chromedp.SendKeys(chromedp.ID("by"), "dana"),
	); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "undo-button")
	if got := text(t, ctx, "notice"); !strings.Contains(got, "Undone") {
		t.Errorf("after undo the page says %q, want Undone", got)
	}
	screenshot(t, ctx, "suppression-undone-1280.png")
	if got := r.member(t, long[1]); got != "subscribed" {
		t.Errorf("list membership after undo in the browser = %s, want subscribed", got)
	}
	evs := r.removedEvents(t, long[1])
	if len(evs) != 1 || evs[0].Suppression.ID != id || evs[0].Suppression.RemovedBy != "dana" ||
		evs[0].Suppression.RemovedWhy != "address works again, confirmed with the customer" {
		t.Errorf("suppression.removed events after undo in the browser = %+v, want one by dana with the reason", evs)
	}

	// Bulk undo of one rule's suppressions: preview, then confirm.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/suppressions"),
		chromedp.WaitVisible(chromedp.ID("bulk-rule")),
		chromedp.SendKeys(chromedp.ID("bulk-rule"), rules[0]),
	); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "preview-button")
	if got := text(t, ctx, "preview-count"); !strings.HasPrefix(got, "5 suppressions") {
		t.Fatalf("bulk preview says %q, want 5 suppressions", got)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("why"), "rule misfired on the digest")); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "confirm-button")
	if got := text(t, ctx, "notice"); !strings.Contains(got, "Lifted 5 suppressions") {
		t.Errorf("after bulk undo the page says %q, want Lifted 5 suppressions", got)
	}
	screenshot(t, ctx, "suppressions-bulk-undone-1280.png")
	if got := r.member(t, long[0]); got != "subscribed" {
		t.Errorf("list membership of %s after bulk undo = %s, want subscribed", long[0], got)
	}
	if evs := r.removedEvents(t, long[0]); len(evs) != 1 || evs[0].Suppression.RemovedWhy != "rule misfired on the digest" {
		t.Errorf("suppression.removed events of %s after bulk undo = %+v, want one with the reason", long[0], evs)
	}
}
