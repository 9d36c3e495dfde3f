package webui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/httpapi"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is the policy every page is served with: nothing
// but this server's own stylesheet and images, no script at all, forms
// posting only here, no framing.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure a UI. The zero value is valid.
type Options struct {
	// Metrics are read by the dashboard (cache hit rates, decisions per
	// policy); without them the dashboard says so. Pass the ones the API
	// was built with.
	Metrics *httpapi.Metrics
	// Health is read by the dashboard (the store's state and ping latency).
	Health *httpapi.Health
	// CookieName is the API's session cookie (httpapi.Options.CookieName);
	// default karat_session. The UI only clears it, when a session has
	// ended; the API sets it.
	CookieName string
	// SecureCookies marks the cookie the UI clears Secure, as the API's.
	SecureCookies bool
	// Refresh is how often the dashboard reloads itself; default 5s.
	Refresh time.Duration
	// StoreTimeout bounds the dashboard's store calls; default 500ms.
	StoreTimeout time.Duration
	// Now is the clock used for "3 min ago"; default time.Now.
	Now func() time.Time
	// Logger gets the UI's own warnings; default slog.Default().
	Logger *slog.Logger
}

// UI is karat serve's web pages over an httpapi.API. Build it with New and
// Mount it on the router the API is mounted on.
type UI struct {
	api   *httpapi.API
	opts  Options
	log   *slog.Logger
	apiH  http.Handler // the router the API is mounted on
	pages map[string]*template.Template
	cop   *http.CrossOriginProtection
}

// New returns the web UI over api. opts may be nil.
func New(api *httpapi.API, opts *Options) (*UI, error) {
	if api == nil {
		return nil, errors.New("webui: New needs an API")
	}
	u := &UI{api: api}
	if opts != nil {
		u.opts = *opts
	}
	o := &u.opts
	if o.CookieName == "" {
		o.CookieName = "karat_session"
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	u.log = o.Logger
	u.pages = map[string]*template.Template{}
	funcs := template.FuncMap{
		"ago":   u.ago,
		"until": u.until,
		"stamp": stamp,
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ms":    func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) },
		"pct":   func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
		"num":   groupDigits,
	}
	for _, p := range []string{"signin", "devices", "shop", "dashboard", "error"} {
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("webui: template %s: %w", p, err)
		}
		u.pages[p] = t
	}
	u.cop = http.NewCrossOriginProtection()
	u.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.renderError(w, r, http.StatusForbidden, "Request refused",
			"This form was sent from another site, so it was refused. Nothing was changed. Use the buttons on this site's own pages.")
	}))
	return u, nil
}

// Mount registers the pages on r, which must be the router the API was
// mounted on (api.Mount(r) first): the pages call the API's routes in
// process through it.
//
//	GET  /                       → /devices (or /signin)
//	GET  /signin, POST /signin   sign in; POST /signout
//	GET  /devices                your devices; POST /devices/signout, /devices/signout-others
//	GET  /shop, POST /shop/invoices
//	GET  /dashboard              owners only
//	GET  /static/...             the embedded stylesheet
func (u *UI) Mount(r *mux.Router) {
	u.apiH = r
	// Every page but the dashboard costs one unit of the API policy
	// (RateLimitAPI), however many API calls it makes: its in-process
	// calls carry the page's context and are not charged again.
	page := func(h http.HandlerFunc) http.Handler {
		return u.secure(u.htmlErrors(u.api.RateLimitAPI(h)))
	}
	authed := func(h http.HandlerFunc) http.Handler {
		return u.secure(u.htmlErrors(u.api.RateLimitAPI(u.api.Authenticate(h))))
	}
	r.Handle("/", page(u.home)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/signin", page(u.signinPage)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/signin", page(u.signin)).Methods(http.MethodPost)
	r.Handle("/signout", page(u.signout)).Methods(http.MethodPost)
	r.Handle("/devices", authed(u.devices)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/devices/signout", authed(u.signoutDevice)).Methods(http.MethodPost)
	r.Handle("/devices/signout-others", authed(u.signoutOthers)).Methods(http.MethodPost)
	r.Handle("/shop", authed(u.shop)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/shop/invoices", authed(u.createInvoice)).Methods(http.MethodPost)
	// The dashboard reloads itself every few seconds: it is not charged to
	// the API policy (an owner watching it would spend the whole quota),
	// and reads the metrics and the session layer directly.
	r.Handle("/dashboard", u.secure(u.htmlErrors(u.api.Authenticate(http.HandlerFunc(u.dashboard))))).Methods(http.MethodGet, http.MethodHead)
	static, _ := fs.Sub(staticFS, "static")
	r.PathPrefix("/static/").Handler(u.static(http.StripPrefix("/static/", http.FileServerFS(static)))).Methods(http.MethodGet, http.MethodHead)
}

// secure sets the security headers of every page and refuses cross-origin
// state-changing requests (net/http.CrossOriginProtection).
func (u *UI) secure(next http.Handler) http.Handler {
	return u.cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	}))
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

func (u *UI) static(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// htmlErrors turns the problem+json answers of the API's middleware
// (RateLimitAPI, Authenticate) into pages: 401 sends the browser to sign-in
// (clearing a dead cookie), 429 and 503 say when to try again, others get an
// error page. The UI's own handlers never write problem+json.
func (u *UI) htmlErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&problemCatcher{ResponseWriter: w, u: u, r: r}, r)
	})
}

type problemCatcher struct {
	http.ResponseWriter
	u       *UI
	r       *http.Request
	caught  bool
	started bool
}

func (p *problemCatcher) WriteHeader(code int) {
	if p.started {
		return
	}
	p.started = true
	h := p.Header()
	if code < 400 || !strings.HasPrefix(h.Get("Content-Type"), httpapi.ProblemContentType) {
		p.ResponseWriter.WriteHeader(code)
		return
	}
	p.caught = true
	h.Del("Content-Type")
	h.Del("WWW-Authenticate")
	p.u.apiFailure(p.ResponseWriter, p.r, code, h.Get("Retry-After"))
}

func (p *problemCatcher) Write(b []byte) (int, error) {
	if !p.started {
		p.WriteHeader(http.StatusOK)
	}
	if p.caught {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (p *problemCatcher) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// apiFailure answers a page whose API call (or middleware) failed with
// status: to sign-in on 401, an error page otherwise. retryAfter is the
// API's Retry-After, in seconds.
func (u *UI) apiFailure(w http.ResponseWriter, r *http.Request, status int, retryAfter string) {
	switch status {
	case http.StatusUnauthorized:
		u.toSignin(w, r)
	case http.StatusForbidden:
		u.renderError(w, r, status, "Not allowed", "Your account may not open this page.")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfter)
		u.renderError(w, r, status, "Too many requests",
			"You made too many requests. Try again in "+u.wait(retryAfter)+".")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
		u.renderError(w, r, status, "Temporarily unavailable",
			"The store that keeps sessions does not answer. Try again in a few seconds.")
	default:
		u.renderError(w, r, status, http.StatusText(status), "The request could not be completed.")
	}
}

// toSignin sends the browser to sign-in; a cookie it sent (a session that
// ended) is cleared, and sign-in says so.
func (u *UI) toSignin(w http.ResponseWriter, r *http.Request) {
	target := "/signin"
	if _, err := r.Cookie(u.opts.CookieName); err == nil {
		u.clearCookie(w)
		target = "/signin?ended=1"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (u *UI) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: u.opts.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: u.opts.SecureCookies})
}

// apiResult is what one in-process API call answered.
type apiResult struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// decode reads the JSON body into v.
func (res *apiResult) decode(v any) error { return json.Unmarshal(res.body, v) }

// call makes one API request in process, as the browser would have made it:
// with its cookie, user agent, peer address and forwarding headers, under
// the page request's context (so that the API policy is not charged again
// and the request log names the page's user).
func (u *UI) call(r *http.Request, method, path string, body any) (*apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	req.TLS = r.TLS
	for _, h := range []string{"Cookie", "User-Agent", "X-Forwarded-For", "Forwarded", "Accept-Language"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	start := time.Now()
	u.apiH.ServeHTTP(rec, req)
	took := time.Since(start)
	// The API's routes re-tagged the request log with their own route
	// template; give the page its own back.
	httpapi.TagRoute(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(nil, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &apiResult{status: rec.status, header: rec.header, body: rec.body.Bytes(), took: took}, nil
}

// recorder is the ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
}
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}

// forwardCookies copies the Set-Cookie fields of an API answer (the session
// cookie, set or cleared by the API itself) to the page's response.
func forwardCookies(w http.ResponseWriter, res *apiResult) {
	for _, c := range res.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
}

// pageData is what every page's layout needs.
type pageData struct {
	Title   string
	Nav     string // the current page, for aria-current
	User    *httpapi.SessionData
	Tenant  string
	Owner   bool
	Refresh int // seconds; 0: no automatic reload
	Content any
}

func (u *UI) render(w http.ResponseWriter, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		u.log.Error("webui: rendering a page", "page", name, "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorContent struct {
	Status  int
	Heading string
	Message string
}

func (u *UI) renderError(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	d := pageData{Title: heading, Content: errorContent{Status: status, Heading: heading, Message: msg}}
	if c := httpapi.CallerOf(r); c != nil {
		u.withCaller(&d, c)
	}
	u.render(w, status, "error", d)
}

func (u *UI) withCaller(d *pageData, c *httpapi.Caller) {
	data := c.Data
	d.User = &data
	d.Tenant = c.Session.Tenant
	d.Owner = c.Data.Role == "owner"
}

// wait says a Retry-After (seconds) in words.
func (u *UI) wait(retryAfter string) string {
	s, err := strconv.Atoi(retryAfter)
	if err != nil || s < 1 {
		s = 1
	}
	return humanDuration(time.Duration(s) * time.Second)
}

// humanDuration is "14 min 5 s", "2 h 3 min", "45 s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case h > 0:
		return fmt.Sprintf("%d h", h)
	case m > 0 && s > 0:
		return fmt.Sprintf("%d min %d s", m, s)
	case m > 0:
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d s", s)
}

func (u *UI) ago(t time.Time) string {
	d := u.opts.Now().Sub(t)
	if d < 5*time.Second {
		return "just now"
	}
	return humanDuration(d.Truncate(time.Second)) + " ago"
}

func (u *UI) until(t time.Time) string {
	d := t.Sub(u.opts.Now())
	if d <= 0 {
		return "now"
	}
	return "in " + humanDuration(max(d.Truncate(time.Minute), time.Minute))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// groupDigits writes an integer with thousands separators: 150,000.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// storeCtx bounds the dashboard's store calls.
func (u *UI) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.opts.StoreTimeout)
}
