package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

func testRLSpoofedHeaders(e *env) {
	t := e.t
	ips, err := ratelimit.NewClientIP("10.0.0.0/8", "fd00::/8")
	require.NoError(t, err)
	p := ratelimit.Policy{Name: "spoof", Limit: 5, Window: time.Hour}
	l := e.limiter(e.s, nil)
	h := l.Middleware([]ratelimit.Rule{{Policy: p, Key: ips.Key}}, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(remote string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// An untrusted peer sends 50 requests, each claiming another client.
	ok := 0
	for i := range 50 {
		w := do("198.51.100.7:4242", map[string]string{
			"X-Forwarded-For": fmt.Sprintf("203.0.113.%d, 10.1.1.1", i),
			"Forwarded":       fmt.Sprintf(`for="[2001:db8::%x]";proto=https`, i),
			"X-Real-Ip":       fmt.Sprintf("192.0.2.%d", i),
		})
		switch w.Code {
		case http.StatusNoContent:
			ok++
		case http.StatusTooManyRequests:
			assert.NotEmpty(t, w.Header().Get("Retry-After"), "429 carries Retry-After")
		default:
			t.Fatalf("status %d", w.Code)
		}
		assert.NotContains(t, w.Header().Get("RateLimit"), "198.51.100.7", "no raw IP in a partition key")
	}
	assert.Equal(t, 5, ok, "every spoofed request landed in the peer's one bucket")

	// Behind a trusted proxy, X-Forwarded-For is believed: two clients, two
	// buckets; a client's own spoofed entry to the left is ignored.
	for i := range 5 {
		assert.Equal(t, http.StatusNoContent, do("10.0.0.2:1", map[string]string{"X-Forwarded-For": fmt.Sprintf("6.6.6.%d, 192.0.2.10", i)}).Code)
	}
	assert.Equal(t, http.StatusTooManyRequests, do("10.0.0.2:1", map[string]string{"X-Forwarded-For": "192.0.2.10"}).Code, "192.0.2.10's bucket is full")
	assert.Equal(t, http.StatusNoContent, do("10.0.0.2:1", map[string]string{"X-Forwarded-For": "192.0.2.11"}).Code, "192.0.2.11 has its own")
	// IPv6 clients in one /64 share a bucket, via RFC 7239 Forwarded.
	for i := range 5 {
		w := do("[fd00::1]:443", map[string]string{"Forwarded": fmt.Sprintf(`for="[2001:db8:1:2::%x]:1234"`, i+1)})
		assert.Equal(t, http.StatusNoContent, w.Code)
	}
	w := do("[fd00::1]:443", map[string]string{"Forwarded": `for="[2001:db8:1:2:ffff::1]"`})
	assert.Equal(t, http.StatusTooManyRequests, w.Code, "the /64 is one client")
	assert.Contains(t, w.Header().Get("RateLimit-Policy"), `"spoof";q=5;w=3600;pk=:`)
	assert.Contains(t, w.Header().Get("RateLimit"), `"spoof";r=0;t=`)
	assert.NotContains(t, w.Header().Get("RateLimit"), "2001", "no raw IP in a partition key")
}

// stallingStore stands for a store whose server stopped answering, on a
// harness without a network to stall (the memory driver): every call
// waits for its context, as a call to a silent server does, and then fails
// as the drivers do (ErrUnavailable joined with the context's error).
// Until stalled is set, it passes calls through.
type stallingStore struct {
	store.Store
	stalled *atomic.Bool
}

func (s stallingStore) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if !s.stalled.Load() {
		return s.Store.Eval(ctx, sc, keys, args...)
	}
	<-ctx.Done()
	return store.Value{}, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

func (s stallingStore) Delete(ctx context.Context, keys ...string) (int64, error) {
	if !s.stalled.Load() {
		return s.Store.Delete(ctx, keys...)
	}
	<-ctx.Done()
	return 0, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

// UpdateInt64 stalls the in-process decisions too: store.Capability looks
// through the wrapper, so a limiter over it would otherwise find the memory
// driver's store.Int64Updater underneath and never stall.
func (s stallingStore) UpdateInt64(ctx context.Context, key string, fn store.Int64Func, u store.Int64Update) (store.Int64Update, error) {
	if !s.stalled.Load() {
		if upd, ok := store.Capability[store.Int64Updater](s.Store); ok {
			return upd.UpdateInt64(ctx, key, fn, u)
		}
		return u, fmt.Errorf("stallingStore: %T cannot update in process: %w", s.Store, errors.ErrUnsupported)
	}
	<-ctx.Done()
	return u, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

// Unwrap lets store.Capability look through the wrapper.
func (s stallingStore) Unwrap() store.Store { return s.Store }

func testRLFailModes(e *env) {
	t := e.t
	var s store.Store
	var stall func()
	if st, ok := e.h.(Staller); ok {
		var err error
		s, stall, err = st.StalledStore(e.ctx)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Logf("harness cannot stall this target (%v): wrapping the store instead", err)
			s = nil
		} else {
			require.NoError(t, err)
		}
	}
	if s == nil {
		t.Log("no network the harness can stall (memory driver, or none it can cut): the store is wrapped so that every call waits for its deadline, as against a silent server")
		var stalled atomic.Bool
		s = stallingStore{Store: e.s, stalled: &stalled}
		stall = func() { stalled.Store(true) }
	}
	base := ratelimit.Policy{Limit: 4, Window: time.Hour}
	closed, open, local := base, base, base
	closed.Name, closed.FailMode = "fail-closed", ratelimit.FailClosed
	open.Name, open.FailMode = "fail-open", ratelimit.FailOpen
	local.Name, local.FailMode, local.LocalShare = "fail-local", ratelimit.FailLocal, 0.5
	l := e.limiter(s, &ratelimit.Options{Timeout: -1, FailRetryAfter: 3 * time.Second})
	// Before the stall, the store works.
	d, err := l.Allow(e.ctx, open, "k", 1)
	require.NoError(t, err)
	require.NoError(t, d.Degraded)
	require.True(t, d.Allowed)
	stall()

	const deadline = 300 * time.Millisecond
	call := func(name string, p ratelimit.Policy) ratelimit.Decision {
		t.Helper()
		stall() // again: a cluster's CLIENT PAUSE lasts only 2 s
		ctx, cancel := context.WithTimeout(e.ctx, deadline)
		defer cancel()
		start := time.Now()
		d, err := l.Allow(ctx, p, "k", 1)
		took := time.Since(start)
		require.NoError(t, err, name)
		require.Error(t, d.Degraded, "%s: the store did not answer, the fail mode decided", name)
		assert.ErrorIs(t, d.Degraded, store.ErrUnavailable, name)
		// Returning at the deadline is the promise; scheduling on a loaded
		// machine may add a little.
		assert.Less(t, took, deadline+2*time.Second, "%s returned %v after a %v deadline", name, took, deadline)
		return d
	}
	d = call("closed", closed)
	assert.False(t, d.Allowed, "closed denies")
	assert.Equal(t, 3*time.Second, d.RetryAfter, "closed says when to retry")
	d = call("open", open)
	assert.True(t, d.Allowed, "open allows")
	assert.Equal(t, uint64(1), l.Stats().FailedOpen, "and counts it")
	admitted := 0
	for range 4 {
		if call("local", local).Allowed {
			admitted++
		}
	}
	assert.Equal(t, 2, admitted, "local admits its share (half of 4) in process")
	st := l.Stats()
	assert.Equal(t, uint64(1), st.FailedClosed)
	assert.Equal(t, uint64(4), st.FailedLocal)

	// The middleware answers within the deadline too: 429 for a closed
	// policy, never a panic or a hang.
	h := l.Middleware([]ratelimit.Rule{{Policy: closed, Key: func(*http.Request) (string, error) { return "k", nil }}}, nil)(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	stall()
	ctx, cancel := context.WithTimeout(e.ctx, deadline)
	defer cancel()
	r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, r)
	assert.Less(t, time.Since(start), deadline+2*time.Second)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.Equal(t, "3", rec.Header().Get("Retry-After"))
	assert.True(t, strings.HasPrefix(rec.Header().Get("RateLimit"), `"fail-closed";r=0`), rec.Header().Get("RateLimit"))
}
