package webui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/webui"
)

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	s := newSite(t, nil)
	c := s.client(t)
	check := func(path string, p page) {
		t.Helper()
		if got := p.header.Get("Content-Security-Policy"); got != webui.ContentSecurityPolicy {
			t.Errorf("%s: CSP %q, want %q", path, got, webui.ContentSecurityPolicy)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
			if got := p.header.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", path, k, got, want)
			}
		}
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") {
			t.Errorf("%s: the page holds a script or an inline style, which the CSP forbids", path)
		}
	}
	for _, path := range []string{"/", "/signin", "/devices", "/static/style.css"} {
		check(path, c.get(path))
	}
	c.signIn("tehran-gold", "owner@tehran-gold.test")
	for _, path := range []string{"/devices", "/shop", "/dashboard"} {
		p := c.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		if cc := p.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
		}
		check(path, p)
	}
	css := c.get("/static/style.css")
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", css.status, css.header.Get("Content-Type"))
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		s := newSite(t, &siteOptions{api: httpapi.Options{SecureCookies: secure}})
		c := s.client(t)
		p := c.post("/signin", url.Values{"tenant": {"tehran-gold"}, "email": {"owner@tehran-gold.test"}, "password": {testPassword}})
		if p.status != http.StatusSeeOther {
			t.Fatalf("sign in: %d", p.status)
		}
		res := http.Response{Header: p.header}
		var ck *http.Cookie
		for _, k := range res.Cookies() {
			if k.Name == "karat_session" {
				ck = k
			}
		}
		if ck == nil {
			t.Fatal("no session cookie set")
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != secure || ck.Path != "/" {
			t.Errorf("secure=%v: cookie HttpOnly=%v SameSite=%v Secure=%v Path=%q", secure, ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path)
		}
		if strings.Contains(p.header.Get("Location"), ck.Value) || strings.Contains(p.body, ck.Value) {
			t.Error("the token appears in the redirect or the body")
		}
	}
}

// The token never appears in a URL or a page: every Location and body of a
// whole walk through the pages is searched for it.
func TestNoTokenInAnyURLOrPage(t *testing.T) {
	s := newSite(t, nil)
	c := s.client(t)
	c.signIn("tehran-gold", "owner@tehran-gold.test")
	tok := c.cookie().Value
	if len(tok) < 32 {
		t.Fatalf("token %d bytes", len(tok))
	}
	var pages []page
	for _, path := range []string{"/", "/devices", "/shop", "/dashboard"} {
		pages = append(pages, c.get(path))
	}
	pages = append(pages, c.post("/shop/invoices", url.Values{"total": {"1000"}}), c.get("/shop?created=INV-2024-002"))
	pages = append(pages, c.post("/devices/signout-others", nil), c.post("/signout", nil), c.get("/signin?signedout=1"))
	for i, p := range pages {
		if strings.Contains(p.header.Get("Location"), tok) || strings.Contains(p.body, tok) {
			t.Errorf("answer %d holds the session token", i)
		}
	}
}

func TestSignedOutOrRevokedGoesToSignIn(t *testing.T) {
	s := newSite(t, nil)
	anon := s.client(t)
	for _, path := range []string{"/devices", "/shop", "/dashboard"} {
		p := anon.get(path)
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin" {
			t.Errorf("%s without a session: %d to %q, want 303 to /signin", path, p.status, p.header.Get("Location"))
		}
	}
	if p := anon.get("/"); p.header.Get("Location") != "/signin" {
		t.Errorf("/ without a cookie: to %q", p.header.Get("Location"))
	}

	a, b := s.client(t), s.client(t)
	a.signIn("tehran-gold", "owner@tehran-gold.test")
	b.signIn("tehran-gold", "owner@tehran-gold.test")
	if p := a.post("/devices/signout-others", nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/devices?revoked=1" {
		t.Fatalf("sign out others: %d to %q", p.status, p.header.Get("Location"))
	}
	p := b.get("/shop")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin?ended=1" {
		t.Fatalf("revoked device's next page: %d to %q, want /signin?ended=1", p.status, p.header.Get("Location"))
	}
	if b.cookie() != nil {
		t.Error("the dead cookie was not cleared")
	}
	if p := b.get("/signin?ended=1"); !strings.Contains(p.body, "Your session has ended") {
		t.Error("sign-in does not say the session ended")
	}
	// a is still signed in; signing out ends its session too.
	if p := a.get("/devices"); p.status != http.StatusOK {
		t.Fatalf("a after revoking others: %d", p.status)
	}
	if p := a.post("/signout", nil); p.header.Get("Location") != "/signin?signedout=1" {
		t.Fatalf("sign out: to %q", p.header.Get("Location"))
	}
	if p := a.get("/devices"); p.status != http.StatusSeeOther {
		t.Errorf("after sign out /devices: %d", p.status)
	}
}

func TestCrossSiteFormPostRefused(t *testing.T) {
	s := newSite(t, nil)
	a, b := s.client(t), s.client(t)
	a.signIn("tehran-gold", "owner@tehran-gold.test")
	b.signIn("tehran-gold", "owner@tehran-gold.test")
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		for _, path := range []string{"/devices/signout-others", "/signout", "/shop/invoices"} {
			p := a.do(http.MethodPost, path, url.Values{"total": {"5"}}, h)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "sent from another site") {
				t.Errorf("%s with %v: %d, want the 403 page", path, h, p.status)
			}
		}
	}
	if p := b.get("/devices"); p.status != http.StatusOK || strings.Count(p.body, `class="card device`) != 2 {
		t.Errorf("after refused posts b sees %d (status %d), want both devices", strings.Count(p.body, `class="card device`), p.status)
	}
	// The same post from the site's own page is accepted.
	if p := a.do(http.MethodPost, "/devices/signout-others", url.Values{}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.URL}); p.status != http.StatusSeeOther {
		t.Errorf("same-origin post: %d", p.status)
	}
}

func TestSignInMessages(t *testing.T) {
	s := newSite(t, nil)
	c := s.client(t)
	bad := url.Values{"tenant": {"tehran-gold"}, "email": {"clerk@tehran-gold.test"}, "password": {"wrong"}}
	for i := 1; i <= 5; i++ {
		p := c.post("/signin", bad)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong shop, email or password.") {
			t.Fatalf("failure %d: %d %.200s", i, p.status, p.body)
		}
		if !strings.Contains(p.body, `value="clerk@tehran-gold.test"`) || strings.Contains(p.body, `value="wrong"`) {
			t.Error("the form should keep the email and never the password")
		}
	}
	p := c.post("/signin", bad)
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Signing in is locked: try again in") {
		t.Fatalf("6th failure: %d %.300s", p.status, p.body)
	}
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || p.header.Get("Retry-After") == "" {
		t.Errorf("lockout: Content-Type %q Retry-After %q", ct, p.header.Get("Retry-After"))
	}
	if !strings.Contains(p.body, `id="password"`) {
		t.Error("the lockout page should still be the sign-in form")
	}
	// Empty fields are refused before any call.
	if p := c.post("/signin", url.Values{"tenant": {"tehran-gold"}}); p.status != http.StatusBadRequest {
		t.Errorf("empty fields: %d", p.status)
	}
	// Hostile input: a long, odd tenant and email are refused as a page.
	long := strings.Repeat("{*\n", 3000) + "\xff"
	if p := c.post("/signin", url.Values{"tenant": {long}, "email": {long}, "password": {"x"}}); p.status != http.StatusBadRequest || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Errorf("hostile fields: %d %s", p.status, p.header.Get("Content-Type"))
	}
	// A body over the form cap is refused.
	if p := c.post("/signin", url.Values{"tenant": {strings.Repeat("x", 20<<10)}}); p.status != http.StatusBadRequest {
		t.Errorf("oversized form: %d", p.status)
	}
}

func TestClerkRefusedDashboard(t *testing.T) {
	s := newSite(t, nil)
	clerk := s.client(t)
	clerk.signIn("tehran-gold", "clerk@tehran-gold.test")
	p := clerk.get("/dashboard")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "Owners only") {
		t.Fatalf("clerk dashboard: %d %.200s", p.status, p.body)
	}
	if strings.Contains(clerk.get("/devices").body, `href="/dashboard"`) {
		t.Error("a clerk's navigation links the dashboard")
	}
	owner := s.client(t)
	owner.signIn("tehran-gold", "owner@tehran-gold.test")
	p = owner.get("/dashboard")
	if p.status != http.StatusOK || !strings.Contains(p.body, `<meta http-equiv="refresh" content="5">`) {
		t.Fatalf("owner dashboard: %d", p.status)
	}
	for _, want := range []string{`id="sessions-live">2<`, `id="store-state"`, `<th scope="row">login</th>`, `<th scope="row">api</th>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
}

func TestShopMissThenHitAndInvalidation(t *testing.T) {
	s := newSite(t, nil)
	c := s.client(t)
	c.signIn("tehran-gold", "owner@tehran-gold.test")
	first := c.get("/shop")
	if n := strings.Count(first.body, `miss cache">cache miss<`); n != 5 {
		t.Fatalf("first load: %d misses, want 5", n)
	}
	for _, want := range []string{`dir="auto">علی احمدی<`, `dir="auto">گردنبند طلا<`, "INV-2024-001", "150,000", "2075.5", "350.75 g"} {
		if !strings.Contains(first.body, want) {
			t.Errorf("shop lacks %q", want)
		}
	}
	second := c.get("/shop")
	if n := strings.Count(second.body, `hit cache">cache hit<`); n != 5 {
		t.Fatalf("second load: %d hits, want 5", n)
	}
	p := c.post("/shop/invoices", url.Values{"total": {"1000"}})
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/shop?created=INV-") {
		t.Fatalf("create invoice: %d to %q", p.status, loc)
	}
	after := c.get(loc)
	if !strings.Contains(after.body, "so the KPIs below were loaded again: a cache miss") {
		t.Errorf("no invalidation notice: %.2000s", after.body)
	}
	if n := strings.Count(after.body, `miss cache">cache miss<`); n != 1 {
		t.Errorf("after the invoice: %d misses, want 1 (the KPIs)", n)
	}
	if !strings.Contains(after.body, "<dt>Invoices</dt><dd>2</dd>") {
		t.Error("the reloaded KPIs do not count the new invoice")
	}
	if p := c.post("/shop/invoices", url.Values{"total": {"-3"}}); p.header.Get("Location") != "/shop?invalid=1" {
		t.Errorf("bad total: to %q", p.header.Get("Location"))
	}
	// A reflected created= that is not an invoice number is ignored.
	if p := c.get("/shop?created=%3Cscript%3E"); strings.Contains(p.body, "<script>") || strings.Contains(p.body, "invoice-created") {
		t.Error("created= is reflected")
	}
}

// A page costs one unit of the API policy whatever it calls; when the
// policy denies, the page says when to come back (never a raw 429); the
// dashboard is not charged.
func TestAPIPolicyPerPage(t *testing.T) {
	pol, err := ratelimit.ParsePolicy("api 4/15m")
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, &siteOptions{api: httpapi.Options{Policies: httpapi.Policies{API: pol}}})
	c := s.client(t)
	c.signIn("tehran-gold", "owner@tehran-gold.test") // 1
	for i := range 10 {
		if p := c.get("/dashboard"); p.status != http.StatusOK {
			t.Fatalf("dashboard %d: %d", i, p.status)
		}
	}
	for i := range 3 { // 2, 3, 4: five API calls each, one unit each
		if p := c.get("/shop"); p.status != http.StatusOK {
			t.Fatalf("shop %d: %d", i, p.status)
		}
	}
	p := c.get("/shop")
	if p.status != http.StatusTooManyRequests || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(p.body, "Try again in") || p.header.Get("Retry-After") == "" {
		t.Fatalf("over the API policy: %d %s %.300s", p.status, p.header.Get("Content-Type"), p.body)
	}
}

func TestParseUserAgent(t *testing.T) {
	for _, tc := range []struct{ ua, browser, device string }{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome 131", "Windows"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari 17", "iPhone"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133", "Mac"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome 131", "Android phone"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86", "Edge 131", "Windows"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Headless Chrome 156", "Linux"},
		{"curl/8.5.0", "curl 8", "command line"},
		{"", "Unknown browser", "Unknown device"},
		{"\xff\x00{*}", "Unknown browser", "Unknown device"},
	} {
		a := webui.ParseUserAgent(tc.ua)
		if a.Browser != tc.browser || a.Device != tc.device {
			t.Errorf("%q: %q on %q, want %q on %q", tc.ua, a.Browser, a.Device, tc.browser, tc.device)
		}
	}
	if s := webui.ParseUserAgent("curl/8.5.0").String(); s != "curl 8 on command line" {
		t.Errorf("String: %q", s)
	}
}

// Relative times come from the injected clock.
func TestDevicesTimesFromInjectedClock(t *testing.T) {
	s := newSite(t, &siteOptions{ui: webui.Options{Now: func() time.Time { return time.Now().Add(2*time.Hour + 3*time.Minute + 30*time.Second) }}})
	c := s.client(t)
	c.signIn("tehran-gold", "owner@tehran-gold.test")
	p := c.get("/devices")
	if !strings.Contains(p.body, ">2 h 3 min ago<") {
		t.Errorf("devices page with the clock 2h03 ahead: %.3000s", p.body)
	}
}

func TestNewNeedsAnAPI(t *testing.T) {
	if _, err := webui.New(nil, nil); err == nil {
		t.Fatal("New(nil) returned no error")
	}
}

func TestSignOutOwnAndUnknownDevice(t *testing.T) {
	s := newSite(t, nil)
	c := s.client(t)
	c.signIn("tehran-gold", "owner@tehran-gold.test")
	if p := c.post("/devices/signout", url.Values{"id": {"not-a-session"}}); p.header.Get("Location") != "/devices?gone=1" {
		t.Errorf("unknown id: to %q", p.header.Get("Location"))
	}
	if p := c.get("/devices?gone=1"); !strings.Contains(p.body, "That session had already ended.") {
		t.Error("no 'already ended' message")
	}
	body := c.get("/devices").body
	i := strings.Index(body, `data-session="`)
	if i < 0 {
		t.Fatal("no session on the devices page")
	}
	id := body[i+len(`data-session="`):]
	id = id[:strings.IndexByte(id, '"')]
	p := c.post("/devices/signout", url.Values{"id": {id}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin?signedout=1" {
		t.Fatalf("signing this device out: %d to %q", p.status, p.header.Get("Location"))
	}
	if c.cookie() != nil {
		t.Error("the cookie survived signing this device out")
	}
	if p := c.get("/devices"); p.status != http.StatusSeeOther {
		t.Errorf("devices after signing this device out: %d", p.status)
	}
}

// While the store does not answer, pages say so (503, in words, with
// Retry-After), never hang and never show a raw problem; they come back by
// themselves. A real Redis behind a proxy that stalls.
func TestStoreDownPagesSayWhen(t *testing.T) {
	rs := redistest.Single(t)
	for _, driver := range []string{"", "?driver=goredis"} {
		t.Run("driver="+strings.TrimPrefix(driver, "?driver="), func(t *testing.T) {
			px := redistest.NewProxy(t, rs.Addr)
			s := newSite(t, &siteOptions{storeURL: "redis://" + px.Addr + driver})
			c := s.client(t)
			c.signIn("tehran-gold", "owner@tehran-gold.test")
			if p := c.get("/shop"); p.status != http.StatusOK {
				t.Fatalf("shop before the outage: %d", p.status)
			}
			other := s.client(t)

			px.Stall()
			for _, path := range []string{"/devices", "/dashboard"} {
				// A driver with client-side caching (rueidis) may answer
				// reads from its cache for a moment (the session layer's
				// MaxStale): poll until the page meets the store.
				deadline := time.Now().Add(15 * time.Second)
				for {
					p := c.get(path)
					if p.status == http.StatusOK && time.Now().Before(deadline) {
						continue
					}
					if p.status != http.StatusServiceUnavailable || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") ||
						p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "does not answer") {
						t.Errorf("%s while the store is down: %d %s %.300s", path, p.status, p.header.Get("Content-Type"), p.body)
					}
					break
				}
			}
			p := other.post("/signin", url.Values{"tenant": {"tehran-gold"}, "email": {"clerk@tehran-gold.test"}, "password": {testPassword}})
			if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "does not answer") || !strings.Contains(p.body, `id="password"`) {
				t.Errorf("sign in while the store is down: %d %.300s", p.status, p.body)
			}
			if other.cookie() != nil {
				t.Error("a sign-in while the store was down set a cookie")
			}
			px.Resume()
			deadline := time.Now().Add(20 * time.Second)
			for {
				p := c.get("/devices")
				if p.status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/devices after the store came back: still %d", p.status)
				}
			}
		})
	}
}
