package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/karat-go/karat/webui"
)

// The browser tests drive the pages in Debian's chromium (or any Chrome on
// PATH, or the one KARAT_CHROMIUM names), headless. Without a browser they
// skip, saying why; with KARAT_REQUIRE_BROWSER=1 (CI) they fail instead.
// Each saves screenshots under its temporary directory (or
// KARAT_SCREENSHOTS, to keep them) and logs their paths.

// User agents of the two "devices".
const (
	uaWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// browserTimeout bounds each browser test. It guards against a hang, not a
// slow run: on the 2-core machine with the race detector and other packages'
// tests beside it, a whole test (four devices, a dashboard waiting for its
// reloads) once took over 60 s and failed its screenshot for that alone.
const browserTimeout = 3 * time.Minute

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KARAT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "no chromium on PATH (apt-get install chromium, or set KARAT_CHROMIUM)"
	if os.Getenv("KARAT_REQUIRE_BROWSER") == "1" {
		t.Fatal(why + "; KARAT_REQUIRE_BROWSER=1 makes that a failure")
	}
	t.Skip(why + "; set KARAT_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// browser is one headless chromium for a test.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab; parent of the devices
	dir string          // where screenshots go
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1000, 800),
		chromedp.Flag("disable-gpu", true),
	)
	// No sandbox: chromium refuses to start as root (CI) with it, and many
	// containers cannot give it the namespaces it needs. The browser only
	// ever loads the test's own pages.
	opts = append(opts, chromedp.NoSandbox)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // start the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	dir := os.Getenv("KARAT_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: bctx, dir: dir}
}

// device is one browser context (its own cookies) with its own user agent:
// a separate device, as far as the server can tell.
type device struct {
	b    *browser
	name string
	ctx  context.Context
}

func (b *browser) device(name, ua string, width, height int64) *device {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	d := &device{b: b, name: name, ctx: ctx}
	d.must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua})
		return err
	}), chromedp.EmulateViewport(width, height))
	return d
}

func (d *device) must(steps ...chromedp.Action[chromedp.Void]) {
	d.b.t.Helper()
	if err := chromedp.Do(d.ctx, steps...); err != nil {
		d.b.t.Fatalf("%s: %v", d.name, err)
	}
}

// open navigates to path and waits for the page's main element.
func (d *device) open(s *site, path string) {
	d.b.t.Helper()
	d.must(chromedp.Navigate(s.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// submit runs a step that leaves the page (a click, an Enter) and waits for
// the next page to be loaded, without sleeping: the old document is marked
// and the wait is for a document without the mark.
func (d *device) submit(step chromedp.Action[chromedp.Void]) {
	d.b.t.Helper()
	d.must(
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.dataset.old = "1", true`))
			return err
		}),
		step,
		chromedp.WaitReady(chromedp.CSS("html:not([data-old]) main")),
	)
}

func (d *device) text(sel string) string {
	d.b.t.Helper()
	s, err := chromedp.Run(d.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		d.b.t.Fatalf("%s: text of %s: %v", d.name, sel, err)
	}
	return strings.TrimSpace(s)
}

func (d *device) count(sel string) int {
	d.b.t.Helper()
	n, err := chromedp.Run(d.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		d.b.t.Fatalf("%s: count %s: %v", d.name, sel, err)
	}
	return n
}

func (d *device) location() string {
	d.b.t.Helper()
	loc, err := chromedp.Run(d.ctx, chromedp.Location())
	if err != nil {
		d.b.t.Fatal(err)
	}
	return loc
}

// signIn fills the sign-in form with the keyboard only: focus the first
// field, type, Tab to the next, and Enter to submit.
func (d *device) signIn(s *site, tenant, email, password string) {
	d.b.t.Helper()
	d.open(s, "/signin")
	d.submit(chromedp.Steps(
		chromedp.Focus(chromedp.CSS("#tenant")),
		chromedp.KeyEvent(tenant+"\t"+email+"\t"+password+"\r"),
	))
}

// tabTo presses Tab from the top of the page until the focus is on the
// element sel matches, as a keyboard user would, and fails if it never is.
func (d *device) tabTo(sel string) {
	d.b.t.Helper()
	check := fmt.Sprintf(`document.activeElement !== null && document.activeElement.matches(%q)`, sel)
	if _, err := chromedp.Run(d.ctx, chromedp.Evaluate[bool](`document.activeElement && document.activeElement.blur(), true`)); err != nil {
		d.b.t.Fatal(err)
	}
	for range 40 {
		d.must(chromedp.KeyEvent("\t"))
		ok, err := chromedp.Run(d.ctx, chromedp.Evaluate[bool](check))
		if err != nil {
			d.b.t.Fatal(err)
		}
		if ok {
			return
		}
	}
	d.b.t.Fatalf("%s: 40 Tabs never reached %s", d.name, sel)
}

// screenshot saves the whole page as a PNG and logs where.
func (d *device) screenshot(name string) string {
	d.b.t.Helper()
	png, err := chromedp.Run(d.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(d.b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.b.t.Fatal(err)
	}
	d.b.t.Logf("screenshot %s", path)
	return path
}

func TestBrowserTwoDevices(t *testing.T) {
	s := newSite(t, nil)
	b := newBrowser(t)
	pc := b.device("windows", uaWindows, 1000, 760)
	phone := b.device("iphone", uaIPhone, 390, 844)
	pc.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	phone.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)

	for _, d := range []*device{pc, phone} {
		d.open(s, "/devices")
		if n := d.count("li.device"); n != 2 {
			t.Fatalf("%s sees %d devices, want 2", d.name, n)
		}
		if n := d.count("li.device.current"); n != 1 {
			t.Fatalf("%s marks %d devices as this one, want 1", d.name, n)
		}
	}
	if got := pc.text("li.device.current .browser"); got != "Chrome 131" {
		t.Errorf("the PC's own row says browser %q", got)
	}
	if got := pc.text("li.device:not(.current) h2"); !strings.Contains(got, "iPhone") || !strings.Contains(got, "Safari 17") {
		t.Errorf("the PC sees the other device as %q", got)
	}
	if got := phone.text("li.device.current h2"); !strings.Contains(got, "iPhone") || !strings.Contains(got, "This device") {
		t.Errorf("the phone's own row: %q", got)
	}
	if got := pc.text("li.device:not(.current) .ip"); got != "127.0.0.1" {
		t.Errorf("IP %q", got)
	}
	if dir, _ := chromedp.Run(pc.ctx, chromedp.Evaluate[string](`document.querySelector("li.device h2 span").getAttribute("dir")`)); dir != "auto" {
		t.Errorf("device names are not dir=auto: %q", dir)
	}
	if name := pc.text(".who bdi"); name != "رضا تهرانی" {
		t.Errorf("the user's name shows as %q", name)
	}
	pc.screenshot("devices-pc")
	phone.screenshot("devices-phone")

	// The PC signs the phone out, with the keyboard only (Tab to the
	// phone's button, Enter); the phone's next page load is sign-in.
	pc.tabTo("li.device:not(.current) button.signout-device")
	pc.submit(chromedp.KeyEvent("\r"))
	if n := pc.count("li.device"); n != 1 {
		t.Fatalf("after signing the phone out the PC sees %d devices", n)
	}
	if !strings.Contains(pc.text("#notice"), "That device is signed out") {
		t.Errorf("notice: %q", pc.text("#notice"))
	}
	phone.open(s, "/devices")
	if loc := phone.location(); !strings.HasSuffix(loc, "/signin?ended=1") {
		t.Fatalf("the signed-out phone is at %s, want sign-in", loc)
	}
	if !strings.Contains(phone.text("#notice"), "Your session has ended") {
		t.Errorf("sign-in notice: %q", phone.text("#notice"))
	}
	phone.screenshot("phone-signed-out")
}

func TestBrowserLockoutAfterSixFailures(t *testing.T) {
	s := newSite(t, nil)
	b := newBrowser(t)
	d := b.device("pc", uaWindows, 1000, 760)
	for i := 1; i <= 6; i++ {
		d.signIn(s, "tehran-gold", "clerk@tehran-gold.test", "not the password")
		msg := d.text("#signin-error")
		if i <= 5 && msg != "Wrong shop, email or password." {
			t.Fatalf("failure %d says %q", i, msg)
		}
		if i == 6 {
			if !strings.Contains(msg, "Signing in is locked: try again in") {
				t.Fatalf("6th failure says %q", msg)
			}
			if n := d.count("form #password"); n != 1 {
				t.Error("the lockout is not shown on the sign-in page")
			}
		}
	}
	d.screenshot("lockout")
	// The right password is refused too while locked.
	d.signIn(s, "tehran-gold", "clerk@tehran-gold.test", testPassword)
	if msg := d.text("#signin-error"); !strings.Contains(msg, "locked") {
		t.Errorf("the right password while locked: %q", msg)
	}
}

func TestBrowserClerkRefusedDashboard(t *testing.T) {
	s := newSite(t, &siteOptions{ui: webui.Options{Refresh: time.Second}})
	b := newBrowser(t)
	clerk := b.device("clerk", uaWindows, 1000, 760)
	clerk.signIn(s, "tehran-gold", "clerk@tehran-gold.test", testPassword)
	if n := clerk.count(`nav a[href="/dashboard"]`); n != 0 {
		t.Error("the clerk's navigation links the dashboard")
	}
	clerk.open(s, "/dashboard")
	if h := clerk.text("#error-heading"); h != "Owners only" {
		t.Fatalf("the clerk's dashboard says %q", h)
	}
	clerk.screenshot("clerk-dashboard")

	owner := b.device("owner", uaWindows, 1000, 900)
	owner.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	owner.open(s, "/dashboard")
	if live := owner.text("#sessions-live"); live != "2" {
		t.Fatalf("live sessions %q, want 2", live)
	}
	// Live: another sign-in shows up on the dashboard by itself, through
	// its reload, within a few refreshes.
	phone := b.device("owner-phone", uaIPhone, 390, 844)
	phone.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	var live string
	for range 5 {
		owner.must(
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				// Mark the page as old, so that the wait below is for the next
				// one. Between two documents (a reload under way) there is no
				// documentElement to mark, and what comes next is new anyway.
				_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.documentElement && (document.documentElement.dataset.old = "1"), true)`))
				return err
			}),
			chromedp.WaitReady(chromedp.CSS("html:not([data-old]) #sessions-live")),
		)
		if live = owner.text("#sessions-live"); live == "3" {
			break
		}
	}
	if live != "3" {
		t.Fatalf("after a third sign-in the dashboard shows %q live sessions", live)
	}
	if n := owner.count("#caches tbody tr, #policies tbody tr"); n == 0 {
		t.Error("no cache or policy rows")
	}
	owner.screenshot("dashboard")
}

func TestBrowserCrossSiteFormRefused(t *testing.T) {
	s := newSite(t, nil)
	// Another origin (same host, another port: the session cookie is still
	// sent, SameSite=Lax sees the same site) with a form that posts to
	// "sign out all other devices".
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>prize</title><main><form method="post" action="%s/devices/signout-others">`+
			`<button id="win" type="submit">Claim your prize</button></form></main>`, s.URL)
	}))
	t.Cleanup(evil.Close)

	b := newBrowser(t)
	pc := b.device("pc", uaWindows, 1000, 760)
	phone := b.device("phone", uaIPhone, 390, 844)
	pc.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	phone.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)

	pc.must(chromedp.Navigate(evil.URL), chromedp.WaitReady(chromedp.CSS("#win")))
	pc.submit(chromedp.Click(chromedp.CSS("#win")))
	if h := pc.text("#error-heading"); h != "Request refused" {
		t.Fatalf("the cross-site post answered %q", h)
	}
	pc.screenshot("cross-site-refused")
	phone.open(s, "/devices")
	if n := phone.count("li.device"); n != 2 {
		t.Fatalf("after the refused post the phone sees %d devices (signed out?)", n)
	}

	// The same button on the site's own page works.
	pc.open(s, "/devices")
	pc.submit(chromedp.Click(chromedp.CSS("#signout-others")))
	if msg := pc.text("#notice"); msg != "Signed out 1 other device." {
		t.Errorf("notice %q", msg)
	}
	phone.open(s, "/devices")
	if loc := phone.location(); !strings.Contains(loc, "/signin") {
		t.Fatalf("the phone is at %s after sign out all others", loc)
	}
}

func TestBrowserShopMissThenHit(t *testing.T) {
	s := newSite(t, nil)
	b := newBrowser(t)
	d := b.device("pc", uaWindows, 1000, 900)
	d.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	d.open(s, "/shop")
	if n := d.count(".badge.miss.cache"); n != 5 {
		t.Fatalf("first load: %d misses, want 5", n)
	}
	if got := d.text("#record-1 dd[dir=auto]"); got != "علی احمدی" {
		t.Errorf("customer name %q", got)
	}
	d.screenshot("shop-miss")
	d.open(s, "/shop")
	if n := d.count(".badge.hit.cache"); n != 5 {
		t.Fatalf("second load: %d hits, want 5", n)
	}
	if cs := d.text("#record-0 .cache-status"); cs != "karat; hit" {
		t.Errorf("KPIs Cache-Status %q", cs)
	}
	d.screenshot("shop-hit")
	d.submit(chromedp.Click(chromedp.CSS("#create-invoice")))
	if msg := d.text("#invoice-created"); !strings.Contains(msg, "a cache miss") {
		t.Errorf("after creating an invoice: %q", msg)
	}
	if n := d.count("#record-0 .badge.miss"); n != 1 {
		t.Error("the KPIs were not reloaded after the invoice")
	}
	if n := d.count(".badge.hit.cache"); n != 4 {
		t.Errorf("after the invoice %d hits, want 4 (all but the KPIs)", n)
	}
	d.screenshot("shop-invoice")
}

// At 375 px wide no page scrolls sideways.
func TestBrowserNarrowScreen(t *testing.T) {
	s := newSite(t, nil)
	b := newBrowser(t)
	d := b.device("phone", uaIPhone, 375, 740)
	d.open(s, "/signin")
	d.screenshot("narrow-signin")
	d.signIn(s, "tehran-gold", "owner@tehran-gold.test", testPassword)
	for _, path := range []string{"/devices", "/shop", "/dashboard"} {
		d.open(s, path)
		w, err := chromedp.Run(d.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if w > 375 {
			t.Errorf("%s is %d px wide at 375", path, w)
		}
		d.screenshot("narrow" + strings.ReplaceAll(path, "/", "-"))
	}
}
