package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// uiGet and uiPost talk to the web pages like a browser that does not
// follow redirects, so that each answer is seen.
type uiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newUIClient(t *testing.T, base string) *uiClient {
	jar, _ := cookiejar.New(nil)
	return &uiClient{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *uiClient) do(method, path string, form url.Values, h map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// karat serve serves the web pages at / over the same API, on memory and on
// a real Redis through both drivers.
func TestWebPagesServed(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			srv, _ := startOn(t, tg)
			c := newUIClient(t, srv.base)
			if res, _ := c.do("GET", "/", nil, nil); res.StatusCode != 303 || res.Header.Get("Location") != "/signin" {
				t.Fatalf("GET /: %d to %q", res.StatusCode, res.Header.Get("Location"))
			}
			res, body := c.do("GET", "/signin", nil, nil)
			if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
				!strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(body, `<label for="password">`) {
				t.Fatalf("GET /signin: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
			}
			res, _ = c.do("POST", "/signin", url.Values{"tenant": {"tehran-gold"}, "email": {"owner@tehran-gold.test"}, "password": {testPassword}}, nil)
			if res.StatusCode != 303 || res.Header.Get("Location") != "/devices" {
				t.Fatalf("sign in: %d to %q", res.StatusCode, res.Header.Get("Location"))
			}
			var ck *http.Cookie
			for _, k := range res.Cookies() {
				if k.Name == "karat_session" {
					ck = k
				}
			}
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure {
				t.Fatalf("session cookie %+v", ck)
			}
			if _, body := c.do("GET", "/devices", nil, nil); !strings.Contains(body, "This device") {
				t.Fatalf("devices page: %.500s", body)
			}
			if _, body := c.do("GET", "/shop", nil, nil); strings.Count(body, `miss cache">cache miss<`) != 5 {
				t.Fatalf("first shop load: %.800s", body)
			}
			if _, body := c.do("GET", "/shop", nil, nil); strings.Count(body, `hit cache">cache hit<`) != 5 {
				t.Fatalf("second shop load: %.800s", body)
			}
			if res, _ := c.do("POST", "/devices/signout-others", url.Values{}, map[string]string{"Sec-Fetch-Site": "cross-site"}); res.StatusCode != 403 {
				t.Fatalf("cross-site post: %d", res.StatusCode)
			}
			if res, _ := c.do("GET", "/dashboard", nil, nil); res.StatusCode != 200 {
				t.Fatalf("owner dashboard: %d", res.StatusCode)
			}
			if res, _ := c.do("POST", "/signout", url.Values{}, nil); res.Header.Get("Location") != "/signin?signedout=1" {
				t.Fatalf("sign out: to %q", res.Header.Get("Location"))
			}
			if res, _ := c.do("GET", "/devices", nil, nil); res.StatusCode != 303 {
				t.Fatalf("devices after sign out: %d", res.StatusCode)
			}
		})
	}
}

func TestWebSecureCookies(t *testing.T) {
	srv, _ := startOn(t, target{name: "memory", url: "memory://"}, "--secure-cookies")
	c := newUIClient(t, srv.base)
	res, _ := c.do("POST", "/signin", url.Values{"tenant": {"tehran-gold"}, "email": {"clerk@tehran-gold.test"}, "password": {testPassword}}, nil)
	if res.StatusCode != 303 {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	for _, k := range res.Cookies() {
		if k.Name == "karat_session" && (!k.Secure || !k.HttpOnly || k.SameSite != http.SameSiteLaxMode) {
			t.Fatalf("with --secure-cookies: %+v", k)
		}
	}
}
