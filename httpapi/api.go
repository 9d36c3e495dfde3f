package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

// Directory checks credentials. *demo.Users is one.
type Directory interface {
	// Authenticate returns the user of tenant with that email when password
	// is theirs, else an error wrapping demo.ErrBadCredentials.
	Authenticate(ctx context.Context, tenant, email, password string) (demo.User, error)
}

// DataSource is where the tenant routes load from on a cache miss.
// *demo.Catalogue is one. Its errors wrap demo.ErrNotFound or
// demo.ErrInvalid for a missing or refused record.
type DataSource interface {
	KPIs(ctx context.Context, tenant string) (demo.KPIs, error)
	Customer(ctx context.Context, tenant, id string) (demo.Customer, error)
	Product(ctx context.Context, tenant, id string) (demo.Product, error)
	Invoice(ctx context.Context, tenant, id string) (demo.Invoice, error)
	CreateInvoice(ctx context.Context, tenant string, in demo.Invoice) (demo.Invoice, error)
	GoldPrice(ctx context.Context) (demo.GoldPrice, error)
}

// Policies are the rate-limit policies the API applies. Zero fields take
// the ratelimit presets.
type Policies struct {
	API           ratelimit.Policy // every /v1 request, per client IP
	Login         ratelimit.Policy // failed logins, per client IP + email
	PasswordReset ratelimit.Policy // per client IP + email
	Invoice       ratelimit.Policy // invoice creation, per user
	Upload        ratelimit.Policy // uploads, per user
}

func (p *Policies) fill() {
	def := func(dst *ratelimit.Policy, preset ratelimit.Policy) {
		if dst.Name == "" {
			*dst = preset
		}
	}
	def(&p.API, ratelimit.API)
	def(&p.Login, ratelimit.Login)
	def(&p.PasswordReset, ratelimit.PasswordReset)
	def(&p.Invoice, ratelimit.InvoiceCreation)
	def(&p.Upload, ratelimit.Upload)
}

// Options configure an API. SessionSecrets is required; the zero value of
// every other field means its default.
type Options struct {
	// Namespace is the prefix of every key the API's layers write; default
	// karat. Sessions go under Namespace:session, caches under
	// Namespace:cache, rate limits under Namespace:ratelimit.
	Namespace store.Namespace
	// SessionSecrets key the session token hashes, newest first, each at
	// least 32 bytes. Required.
	SessionSecrets [][]byte
	// Session configures the session layer (its Namespace is overridden).
	Session session.Options
	// TrustedProxies are the CIDRs (or addresses) of proxies whose
	// Forwarded / X-Forwarded-For headers are believed. None: the TCP peer
	// is the client.
	TrustedProxies []string
	// SecureCookies marks the session cookie Secure.
	SecureCookies bool
	// CookieName is the session cookie's name; default karat_session.
	CookieName string
	// Policies are the rate limits; zero fields take the presets.
	Policies Policies
	// MaxBodyBytes caps JSON request bodies; default 64 KiB (413 beyond).
	MaxBodyBytes int64
	// MaxUploadBytes caps upload bodies; default 1 MiB (413 beyond).
	MaxUploadBytes int64
	// StoreTimeout bounds each store-facing call a request makes; default
	// 500ms, so that a route answers 503 well within a second when the
	// store does not.
	StoreTimeout time.Duration
	// LimitTimeout bounds each rate-limit decision's store call; default
	// 250ms. With StoreTimeout (session calls) and 3/5 of it (cache calls),
	// every store-facing step of a request is bounded, and the first step
	// that fails answers 503: against a hanging store a request ends within
	// LimitTimeout + StoreTimeout (750 ms by default), the API policy
	// (which fails open) having waited out its bound first.
	LimitTimeout time.Duration
	// LoadTimeout bounds a cache-aside load (its store calls and the load
	// from the data source), which the requests for one entry share: a
	// request waits for it at most that long; default 10s. It is the
	// caches' own bound (cache.Options.LoadTimeout), not a context made per
	// request: a cache hit makes no timer.
	LoadTimeout time.Duration
	// CacheMaxStale is the caches' and sessions' staleness bound across
	// processes; default 1s (the layers' default).
	CacheMaxStale time.Duration
	// Logger gets the API's own log lines (login failures, ...; never a
	// token, cookie or password); default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives cache and rate-limit counts and is served
	// on /metrics by Mount.
	Metrics *Metrics
	// Health, if set, is served on /readyz by Mount and reported by
	// /v1/admin/stats.
	Health *Health
}

// API is the jeweller platform's HTTP API over karat's session, cache and
// rate-limit layers. Build it with New and Mount it on a router.
type API struct {
	opts     Options
	log      *slog.Logger
	s        store.Store
	users    Directory
	data     DataSource
	sessions *session.Manager
	limiter  *ratelimit.Limiter
	clientIP *ratelimit.ClientIP
	pol      Policies

	kpis      *cache.Cache[demo.KPIs]
	customers *cache.Cache[demo.Customer]
	products  *cache.Cache[demo.Product]
	invoices  *cache.Cache[demo.Invoice]
	gold      *cache.Cache[demo.GoldPrice]

	dataMemo dataMemo // decoded session data (see Authenticate)
}

// New builds the API over s: a session manager, a rate limiter and one
// cache per kind of record, all under opts.Namespace.
func New(s store.Store, users Directory, data DataSource, opts *Options) (*API, error) {
	if s == nil || users == nil || data == nil {
		return nil, errors.New("httpapi: New needs a store, a directory and a data source")
	}
	a := &API{s: s, users: users, data: data}
	if opts != nil {
		a.opts = *opts
	}
	o := &a.opts
	if o.Namespace.IsZero() {
		o.Namespace = store.MustNamespace("karat")
	}
	if o.CookieName == "" {
		o.CookieName = "karat_session"
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 1 << 20
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.LimitTimeout <= 0 {
		o.LimitTimeout = 250 * time.Millisecond
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a.log = o.Logger
	a.pol = o.Policies
	a.pol.fill()
	for _, p := range []ratelimit.Policy{a.pol.API, a.pol.Login, a.pol.PasswordReset, a.pol.Invoice, a.pol.Upload} {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("httpapi: policy %q: %w", p.Name, err)
		}
	}
	sub := func(part string) store.Namespace {
		ns, err := o.Namespace.Sub(part)
		if err != nil {
			panic(err) // a constant part under a valid namespace cannot fail
		}
		return ns
	}
	sopts := o.Session
	sopts.Namespace = sub("session")
	if o.CacheMaxStale != 0 && sopts.MaxStale == 0 {
		sopts.MaxStale = o.CacheMaxStale
	}
	var err error
	if a.sessions, err = session.New(s, o.SessionSecrets, &sopts); err != nil {
		return nil, fmt.Errorf("httpapi: sessions: %w", err)
	}
	a.limiter = ratelimit.New(s, &ratelimit.Options{Namespace: sub("ratelimit"), Timeout: o.LimitTimeout})
	if a.clientIP, err = ratelimit.NewClientIP(o.TrustedProxies...); err != nil {
		return nil, fmt.Errorf("httpapi: trusted proxies: %w", err)
	}
	cns := sub("cache")
	storeTimeout := o.StoreTimeout * 3 / 5
	if a.kpis, err = cache.New(s, fallback(cache.KPI), &cache.Options[demo.KPIs]{Namespace: cns, MaxStale: o.CacheMaxStale, StoreTimeout: storeTimeout, LoadTimeout: o.LoadTimeout}); err != nil {
		return nil, err
	}
	if a.customers, err = cache.New(s, fallback(cache.Customer), &cache.Options[demo.Customer]{Namespace: cns, MaxStale: o.CacheMaxStale, StoreTimeout: storeTimeout, LoadTimeout: o.LoadTimeout}); err != nil {
		return nil, err
	}
	if a.products, err = cache.New(s, fallback(cache.Product), &cache.Options[demo.Product]{Namespace: cns, MaxStale: o.CacheMaxStale, StoreTimeout: storeTimeout, LoadTimeout: o.LoadTimeout}); err != nil {
		return nil, err
	}
	if a.invoices, err = cache.New(s, fallback(cache.Invoice), &cache.Options[demo.Invoice]{Namespace: cns, MaxStale: o.CacheMaxStale, StoreTimeout: storeTimeout, LoadTimeout: o.LoadTimeout}); err != nil {
		return nil, err
	}
	if a.gold, err = cache.New(s, cache.GoldPrice, &cache.Options[demo.GoldPrice]{Namespace: cns, MaxStale: o.CacheMaxStale, StoreTimeout: storeTimeout, LoadTimeout: o.LoadTimeout}); err != nil {
		return nil, err
	}
	if o.Metrics != nil {
		o.Metrics.LiveSessions(func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), o.StoreTimeout)
			defer cancel()
			st, err := a.sessions.Stats(ctx)
			if err != nil {
				return -1
			}
			return float64(st.Live)
		})
	}
	return a, nil
}

// fallback is p loading from the data source when the store fails or does
// not answer within the caches' store budget: a slow or absent store then
// costs a load, not a 503 (the data source is the authority for these
// entries; the gold price's preset does so already).
func fallback(p cache.Policy) cache.Policy {
	p.FallbackToLoader = true
	return p
}

// Sessions returns the API's session manager.
func (a *API) Sessions() *session.Manager { return a.sessions }

// Limiter returns the API's rate limiter.
func (a *API) Limiter() *ratelimit.Limiter { return a.limiter }

// Maintain prunes expired sessions (session.Manager.Cleanup, one shard per
// tick) every interval until ctx is done.
func (a *API) Maintain(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, a.opts.StoreTimeout)
			if _, err := a.sessions.Cleanup(cctx); err != nil && ctx.Err() == nil {
				a.log.Warn("session cleanup", "err", err.Error())
			}
			cancel()
		}
	}
}

// Mount registers the API on r: /healthz, /readyz and /metrics (when
// Options.Health and Options.Metrics are set) and every /v1 route on a
// PathPrefix("/v1") subrouter of r. r may itself be a Subrouter. Unknown
// /v1 paths and wrong methods answer problem+json 404 and 405, with the
// rate-limit headers like every /v1 response.
func (a *API) Mount(r *mux.Router) {
	r.Use(TagRoute)
	r.HandleFunc("/healthz", Healthz).Methods(http.MethodGet, http.MethodHead)
	if a.opts.Health != nil {
		r.HandleFunc("/readyz", a.opts.Health.Readyz).Methods(http.MethodGet, http.MethodHead)
	}
	if a.opts.Metrics != nil {
		r.Handle("/metrics", a.opts.Metrics.Handler()).Methods(http.MethodGet)
	}
	if r.NotFoundHandler == nil {
		r.NotFoundHandler = http.HandlerFunc(notFound)
	}
	if r.MethodNotAllowedHandler == nil {
		r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
	}

	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(TagRoute, a.RateLimitAPI)
	v1.NotFoundHandler = a.RateLimitAPI(notFoundOr405(v1))
	v1.MethodNotAllowedHandler = a.RateLimitAPI(notFoundOr405(v1))

	v1.HandleFunc("/auth/login", a.login).Methods(http.MethodPost)
	v1.HandleFunc("/auth/password-reset", a.passwordReset).Methods(http.MethodPost)
	v1.Handle("/auth/logout", a.Authenticate(http.HandlerFunc(a.logout))).Methods(http.MethodPost)
	v1.Handle("/sessions", a.Authenticate(http.HandlerFunc(a.listSessions))).Methods(http.MethodGet)
	v1.Handle("/sessions/revoke-others", a.Authenticate(http.HandlerFunc(a.revokeOthers))).Methods(http.MethodPost)
	v1.Handle("/sessions/{id}", a.Authenticate(http.HandlerFunc(a.revokeSession))).Methods(http.MethodDelete)
	v1.Handle("/gold-price", a.Authenticate(http.HandlerFunc(a.goldPrice))).Methods(http.MethodGet)
	v1.Handle("/admin/stats", a.Authenticate(a.ownersOnly(http.HandlerFunc(a.adminStats)))).Methods(http.MethodGet)

	// Tenant routes are registered on v1 itself: a nested Subrouter would
	// turn gorilla/mux's 405s under /v1 into 404s.
	tenant := func(h http.HandlerFunc) http.Handler { return a.Authenticate(a.sameTenant(h)) }
	v1.Handle("/tenants/{tenant}/kpis", tenant(a.getKPIs)).Methods(http.MethodGet)
	v1.Handle("/tenants/{tenant}/customers/{id}", tenant(a.getCustomer)).Methods(http.MethodGet)
	v1.Handle("/tenants/{tenant}/products/{id}", tenant(a.getProduct)).Methods(http.MethodGet)
	v1.Handle("/tenants/{tenant}/invoices/{id}", tenant(a.getInvoice)).Methods(http.MethodGet)
	v1.Handle("/tenants/{tenant}/invoices", tenant(a.createInvoice)).Methods(http.MethodPost)
	v1.Handle("/tenants/{tenant}/uploads", tenant(a.upload)).Methods(http.MethodPost)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	WriteProblem(w, r, http.StatusNotFound, "no such resource")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	WriteProblem(w, r, http.StatusMethodNotAllowed, "method not allowed on this resource")
}

// notFoundOr405 answers 405 with an Allow header when some route of rt
// takes the path with another method, else 404. gorilla/mux reports such a
// request as not found once a later route accepts its method (a known mux
// behaviour), so the check is made here, by asking the router itself.
func notFoundOr405(rt *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if rt.Match(probe, &match) && match.MatchErr == nil {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			methodNotAllowed(w, r)
			return
		}
		notFound(w, r)
	})
}

// storeCtx bounds one store-facing call.
func (a *API) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.opts.StoreTimeout)
}

// limits is the per-request record of rate-limit decisions, written into the
// RateLimit-Policy and RateLimit fields when the response starts.
type limits struct {
	mu   sync.Mutex
	reqs []ratelimit.Request
	ds   []ratelimit.Decision
}

type limitsKey struct{}

func limitsOf(r *http.Request) *limits {
	l, _ := r.Context().Value(limitsKey{}).(*limits)
	return l
}

// limitWriter sets the rate-limit fields just before the response starts,
// so that they list every policy decided during the request.
type limitWriter struct {
	http.ResponseWriter
	l       *limits
	written bool
}

func (lw *limitWriter) flushHeaders() {
	if lw.written {
		return
	}
	lw.written = true
	lw.l.mu.Lock()
	defer lw.l.mu.Unlock()
	if len(lw.l.ds) > 0 {
		ratelimit.SetHeaders(lw.Header(), lw.l.reqs, lw.l.ds, false)
	}
}

func (lw *limitWriter) WriteHeader(code int) {
	lw.flushHeaders()
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *limitWriter) Write(b []byte) (int, error) {
	lw.flushHeaders()
	return lw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (lw *limitWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

// RateLimitAPI is middleware for every /v1 request: it decides the API
// policy for the client's IP (behind Options.TrustedProxies only), answers
// 429 with Retry-After when it denies, and makes every response carry the
// RateLimit-Policy and RateLimit fields of each policy decided during the
// request (handlers add theirs with decide).
func (a *API) RateLimitAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l := limitsOf(r); l != nil {
			// Already wrapped (a subrouter's NotFoundHandler under this one).
			next.ServeHTTP(w, r)
			return
		}
		l := &limits{}
		r = r.WithContext(context.WithValue(r.Context(), limitsKey{}, l))
		w = &limitWriter{ResponseWriter: w, l: l}
		key, err := a.clientIP.Key(r)
		if err != nil {
			WriteProblem(w, r, http.StatusBadRequest, "cannot tell the client's address")
			return
		}
		if !a.decide(w, r, ratelimit.Request{Policy: a.pol.API, Key: key, Cost: 1}) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// decide takes the requests together (a denial charges none), records the
// decisions for the headers, and answers the request itself when it must
// not go on: 429 with Retry-After when denied, 503 when a fail-closed policy
// could not reach the store, 400 for a key the limiter refuses. It reports
// whether the handler may go on.
func (a *API) decide(w http.ResponseWriter, r *http.Request, reqs ...ratelimit.Request) bool {
	overall, ds, err := a.limiter.AllowAll(r.Context(), reqs)
	if err != nil {
		setLogError(r, err)
		if StoreDown(err) {
			writeError(w, r, err)
			return false
		}
		WriteProblem(w, r, http.StatusBadRequest, "request cannot be rate limited (key too long?)")
		return false
	}
	if l := limitsOf(r); l != nil {
		l.mu.Lock()
		l.reqs = append(l.reqs, reqs...)
		l.ds = append(l.ds, ds...)
		l.mu.Unlock()
	}
	for _, d := range ds {
		switch {
		case d.Degraded != nil:
			a.opts.Metrics.Decision(d.Policy, "degraded")
		case d.Allowed:
			a.opts.Metrics.Decision(d.Policy, "allowed")
		default:
			a.opts.Metrics.Decision(d.Policy, "denied")
		}
	}
	if overall.Allowed {
		return true
	}
	if overall.Degraded != nil {
		setLogError(r, overall.Degraded)
		w.Header().Set("Retry-After", retryAfter(overall))
		WriteProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable; try again shortly")
		return false
	}
	w.Header().Set("Retry-After", retryAfter(overall))
	detail := "rate limit " + strconv.Quote(overall.Policy) + " exceeded"
	if overall.Never {
		detail += "; this request can never be admitted"
	}
	WriteProblem(w, r, http.StatusTooManyRequests, detail)
	return false
}

// replaceDecision replaces the recorded decision of the named policy, so
// that the headers show d instead.
func (a *API) replaceDecision(r *http.Request, policy string, d ratelimit.Decision) {
	l := limitsOf(r)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.ds {
		if l.ds[i].Policy == policy {
			l.ds[i] = d
		}
	}
}

// retryAfter is the Retry-After of a denial, in whole seconds (at least 1).
func retryAfter(d ratelimit.Decision) string {
	if d.Never {
		return "86400"
	}
	s := int64((d.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(1, s), 10)
}

// clientKey is the rate-limit subject of the client's address.
func (a *API) clientKey(r *http.Request) (string, error) { return a.clientIP.Key(r) }

// emailKey normalises an email for rate-limit keys.
func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
