package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/ratelimit"
)

func newMem(t *testing.T) (*ratelimit.Limiter, *memstore.FakeClock) {
	t.Helper()
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	t.Cleanup(func() { s.Close() })
	return ratelimit.New(s, &ratelimit.Options{Clock: clock.Now}), clock
}

// sfItem matches one structured-field list member as the draft has them.
var sfItem = regexp.MustCompile(`^"[A-Za-z0-9._~-]+"(;[a-z]+=(\d+|:[A-Za-z0-9+/=]+:))+$`)

func TestMiddlewareNetHTTP(t *testing.T) {
	l, _ := newMem(t)
	ips, err := ratelimit.NewClientIP()
	require.NoError(t, err)
	perRoute := ratelimit.Policy{Name: "route", Limit: 2, Window: time.Minute}
	rules := []ratelimit.Rule{
		{Policy: ratelimit.API, Key: ips.Key},
		{Policy: perRoute, Key: ratelimit.Join(ips.Key, ratelimit.Route())},
	}
	mw := l.Middleware(rules, &ratelimit.MiddlewareOptions{LegacyHeaders: true})
	// net/http sets Request.Pattern while routing: the limiter goes inside.
	inner := http.NewServeMux()
	inner.Handle("GET /items/{id}", mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })))
	get := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = "192.0.2.1:1000"
		w := httptest.NewRecorder()
		inner.ServeHTTP(w, r)
		return w
	}
	w := get("/items/1")
	require.Equal(t, http.StatusOK, w.Code)
	for _, f := range []string{"RateLimit-Policy", "RateLimit"} {
		for _, item := range regexp.MustCompile(`,\s*`).Split(w.Header().Get(f), -1) {
			assert.Regexp(t, sfItem, item, f)
		}
	}
	assert.Regexp(t, `^"api";q=100;w=900;pk=:[^:]+:, "route";q=2;w=60;pk=:[^:]+:$`, w.Header().Get("RateLimit-Policy"))
	assert.Regexp(t, `^"api";r=99;t=\d+;pk=:[^:]+:, "route";r=1;t=\d+;pk=:[^:]+:$`, w.Header().Get("RateLimit"))
	assert.NotContains(t, w.Header().Get("RateLimit"), "192.0.2.1")
	assert.Equal(t, "2", w.Header().Get("X-RateLimit-Limit"), "legacy headers describe the tightest policy")
	assert.Equal(t, "1", w.Header().Get("X-RateLimit-Remaining"))
	assert.Equal(t, http.StatusOK, get("/items/2").Code, "the route pattern is the key, not the path")
	w = get("/items/3")
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "30", w.Header().Get("Retry-After"))
	// The denial by "route" charged "api" nothing: 98 left after two.
	assert.Contains(t, w.Header().Get("RateLimit"), `"api";r=98;`)
}

func TestMiddlewareChargesOnlyFailures(t *testing.T) {
	l, _ := newMem(t)
	user := ratelimit.Prefixed("user:", func(r *http.Request) string { return r.FormValue("user") })
	h := l.Middleware([]ratelimit.Rule{{Policy: ratelimit.Login, Key: user}}, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("pw") != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	try := func(pw string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/login?user=ada&pw="+pw, nil))
		return w.Code
	}
	for range 10 {
		require.Equal(t, http.StatusOK, try("right"), "successful logins are free")
	}
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, try("wrong"))
	}
	assert.Equal(t, http.StatusTooManyRequests, try("right"), "five failures lock the account")
	// No user: the rule does not apply.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/login", nil))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Empty(t, w.Header().Get("RateLimit"))
}

func TestMiddlewareBadKey(t *testing.T) {
	l, _ := newMem(t)
	var got error
	bad := errors.New("no tenant")
	h := l.Middleware([]ratelimit.Rule{{Policy: ratelimit.API, Key: func(*http.Request) (string, error) { return "", bad }}},
		&ratelimit.MiddlewareOptions{OnError: func(_ *http.Request, err error) { got = err }})(http.NotFoundHandler())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.ErrorIs(t, got, bad)
}

func TestLocalFallbackShare(t *testing.T) {
	l, _ := newMem(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every store call fails at once
	p := ratelimit.Policy{Name: "p", Limit: 10, Window: time.Minute, FailMode: ratelimit.FailLocal, LocalShare: 0.3}
	n := 0
	for range 10 {
		d, err := l.Allow(ctx, p, "k", 1)
		require.NoError(t, err)
		require.Error(t, d.Degraded)
		if d.Allowed {
			n++
		}
	}
	assert.Equal(t, 3, n, "30% of 10 in process")
}
