package webui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/store"
	"github.com/karat-go/karat/webui"
)

// testPassword is every demo user's password in these tests.
const testPassword = "a test password"

// site is karat serve's handler (the API and the pages on one router, as
// cmd/karat builds it) on a test server over the memory store.
type site struct {
	URL     string
	srv     *httptest.Server
	api     *httpapi.API
	catalog *demo.Catalogue
}

type siteOptions struct {
	// storeURL is the store to open; default memory://. Anything else runs
	// under a namespace of its own whose keys are deleted at the end.
	storeURL string
	api      httpapi.Options
	ui       webui.Options
	delay    time.Duration
	noHealth bool
}

func newSite(t testing.TB, o *siteOptions) *site {
	t.Helper()
	if o == nil {
		o = &siteOptions{}
	}
	ctx := context.Background()
	storeURL := o.storeURL
	if storeURL == "" {
		storeURL = "memory://"
	}
	s, err := drivers.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	aopts := o.api
	if storeURL != "memory://" {
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		ns := store.MustNamespace("karat-webui-test", hex.EncodeToString(rnd[:]))
		aopts.Namespace = ns
		t.Cleanup(func() { deleteUnder(t, s, ns.Prefix()) })
	}
	users, err := demo.NewUsers(testPassword, 4)
	if err != nil {
		t.Fatal(err)
	}
	delay := o.delay
	if delay == 0 {
		delay = 20 * time.Millisecond
	}
	cat := demo.NewCatalogue(&demo.CatalogueOptions{Delay: delay})
	metrics := httpapi.NewMetrics()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var health *httpapi.Health
	if !o.noHealth {
		health = httpapi.NewHealth(s, &httpapi.HealthOptions{Logger: logger, Metrics: metrics})
		health.Check(ctx)
	}
	aopts.SessionSecrets = [][]byte{[]byte("a test session secret of 32 bytes or more")}
	aopts.Metrics, aopts.Health, aopts.Logger = metrics, health, logger
	api, err := httpapi.New(s, users, cat, &aopts)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	uopts := o.ui
	uopts.Metrics, uopts.Health, uopts.Logger = metrics, health, logger
	uopts.SecureCookies = aopts.SecureCookies
	ui, err := webui.New(api, &uopts)
	if err != nil {
		t.Fatal(err)
	}
	ui.Mount(r)
	srv := httptest.NewServer(httpapi.Observe(logger, metrics)(r))
	t.Cleanup(srv.Close)
	return &site{URL: srv.URL, srv: srv, api: api, catalog: cat}
}

// deleteUnder deletes every key under prefix (the test's namespace).
func deleteUnder(t testing.TB, s store.Store, prefix string) {
	t.Helper()
	sc, ok := store.Capability[store.Scanner](s)
	if !ok {
		t.Error("the store cannot scan: keys left behind")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sc.Scan(ctx, prefix, func(keys []string) error {
		for _, k := range keys {
			if _, err := s.Delete(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("deleting the test's keys: %v", err)
	}
}

// client is a cookie-keeping HTTP client of a site that does not follow
// redirects, so that tests see each answer.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
	ua   string
}

func (s *site) client(t testing.TB) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: s.URL, ua: "webui-test/1.0", hc: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one answer, body read.
type page struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, header map[string]string) page {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("User-Agent", c.ua)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return page{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (c *client) get(path string) page {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, nil)
}

func (c *client) post(path string, form url.Values) page {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return c.do(http.MethodPost, path, form, nil)
}

// signIn signs in through the form and checks it worked.
func (c *client) signIn(tenant, email string) {
	c.t.Helper()
	p := c.post("/signin", url.Values{"tenant": {tenant}, "email": {email}, "password": {testPassword}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/devices" {
		c.t.Fatalf("sign in as %s: %d to %q, want 303 to /devices; body %.300s", email, p.status, p.header.Get("Location"), p.body)
	}
}

// cookie returns the session cookie the client holds, or nil.
func (c *client) cookie() *http.Cookie {
	u, _ := url.Parse(c.base)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == "karat_session" {
			return ck
		}
	}
	return nil
}
