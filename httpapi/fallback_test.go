package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/store"
)

// cacheFault is a memory store whose calls on the caches' keys (under
// karat:cache:) fail the way the Redis drivers report a failing server:
// stalled (the call hangs until its deadline, then store.ErrUnavailable
// with the deadline) or down (store.ErrUnavailable at once, as a refused
// connection). Sessions and rate limits, under other prefixes, keep
// working: this is the store that missed the caches' budget under
// saturation while the rest of the request went through.
type cacheFault struct {
	store.Store
	stall bool
	hits  atomic.Int64 // calls failed
}

func (s *cacheFault) fail(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if strings.HasPrefix(k, "karat:cache:") {
			s.hits.Add(1)
			if !s.stall {
				return fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
			}
			<-ctx.Done()
			return fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

func (s *cacheFault) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := s.fail(ctx, keys...); err != nil {
		return nil, err
	}
	return s.Store.MGet(ctx, keys...)
}

func (s *cacheFault) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if err := s.fail(ctx, keys...); err != nil {
		return store.Value{}, err
	}
	return s.Store.Eval(ctx, sc, keys, args...)
}

func (s *cacheFault) Delete(ctx context.Context, keys ...string) (int64, error) {
	if err := s.fail(ctx, keys...); err != nil {
		return 0, err
	}
	return s.Store.Delete(ctx, keys...)
}

func (s *cacheFault) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := s.fail(ctx, key); err != nil {
		return 0, err
	}
	return s.Store.IncrBy(ctx, key, delta, ttl)
}

// TestCacheRoutesFallBackToTheLoader: with the caches' store calls
// failing (stalled or down) while sessions and rate limits work, the KPI
// and customer routes answer 200 from the data source, marked in
// Cache-Status as loaded around the store and not stored, every time (no
// 503, which is what they answered before the tenant policies set
// FallbackToLoader).
func TestCacheRoutesFallBackToTheLoader(t *testing.T) {
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "down", true: "stalled"}[stall]
		t.Run(name, func(t *testing.T) {
			s := &cacheFault{Store: memstore.New(nil), stall: stall}
			defer s.Close()
			srv := demoServer(t, s, "fallback password", httpapi.Options{})
			res := postLogin(t, srv.URL, "fallback password")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("login: %d", res.StatusCode)
			}
			cookie := res.Cookies()[0]
			for i := range 2 { // nothing is stored: the second is a fallback too
				for _, path := range []string{"/v1/tenants/tehran-gold/kpis", "/v1/tenants/tehran-gold/customers/1"} {
					req, _ := http.NewRequest("GET", srv.URL+path, nil)
					req.AddCookie(cookie)
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var body map[string]any
					derr := json.NewDecoder(res.Body).Decode(&body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK || derr != nil || len(body) == 0 {
						t.Fatalf("%s (%d) with the cache's store %s: %d %v %v, want 200 from the data source", path, i, name, res.StatusCode, body, derr)
					}
					if cs := res.Header.Get("Cache-Status"); cs != "karat; fwd=miss; detail=store-unavailable" {
						t.Errorf("%s (%d): Cache-Status %q, want the fallback marked", path, i, cs)
					}
				}
			}
			if s.hits.Load() == 0 {
				t.Fatal("the cache's store calls never failed: the test tested nothing")
			}
		})
	}
}

// stallAfterLimit is a memory store that stalls (until the call's deadline,
// then store.ErrUnavailable) every call made after a login's rate-limit
// decision: the give-back of the reservation (a Delete) and every call on
// a session key. The decision itself (an Eval on a rate-limit key) goes
// through: the store went away between the two. A call without a deadline
// would hang for ever on a stalled Redis: it is counted, and let go after
// unboundedWait so that the test can say so.
type stallAfterLimit struct {
	store.Store
	stalls    atomic.Int64
	unbounded atomic.Int64
}

const unboundedWait = 5 * time.Second

func (s *stallAfterLimit) stall(ctx context.Context) error {
	s.stalls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		s.unbounded.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(unboundedWait):
			return fmt.Errorf("%w: test: a call without a deadline, let go", store.ErrUnavailable)
		}
	}
	<-ctx.Done()
	return fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

func (s *stallAfterLimit) Delete(ctx context.Context, keys ...string) (int64, error) {
	return 0, s.stall(ctx)
}

func (s *stallAfterLimit) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	for _, k := range keys {
		if strings.HasPrefix(k, "karat:session") {
			return store.Value{}, s.stall(ctx)
		}
	}
	return s.Store.Eval(ctx, sc, keys, args...)
}

// TestLoginStoreBudget: a login whose store goes away after its rate-limit
// decision answers 503 within one StoreTimeout for all that follows the
// password check (giving back the reservation, then creating the
// session), and no store call it makes, cleanups included, goes without a
// deadline. CI saw a stalled login take 2.4 s on rueidis: the failed
// create's cleanup (deleting the new token's pointer) ran detached from
// every deadline and waited for the stall to end.
func TestLoginStoreBudget(t *testing.T) {
	s := &stallAfterLimit{Store: memstore.New(nil)}
	defer s.Close()
	const timeout = time.Second
	srv := demoServer(t, s, "budget password", httpapi.Options{StoreTimeout: timeout, LimitTimeout: timeout})
	start := time.Now()
	res := postLogin(t, srv.URL, "budget password")
	took := time.Since(start)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login with the store gone after the decision: %d, want 503", res.StatusCode)
	}
	if s.stalls.Load() == 0 {
		t.Fatal("no store call stalled: the test tested nothing")
	}
	if n := s.unbounded.Load(); n > 0 {
		t.Errorf("%d store calls made without a deadline: each would wait for a stalled Redis to come back", n)
	}
	// A budget per call (the give-back, then the create) would take at
	// least 2 s; one takes 1 s plus the request's own work.
	if took >= 2*timeout-100*time.Millisecond {
		t.Errorf("login took %v with StoreTimeout %v: more than one store budget after the password check", took, timeout)
	}
	t.Logf("login answered 503 in %v (StoreTimeout %v)", took.Round(time.Millisecond), timeout)
}

// demoServer serves the demo API (users with password, bcrypt cost 4; a
// catalogue without delay) over s, with opts (SessionSecrets set when
// empty), until the test ends.
func demoServer(t *testing.T, s store.Store, password string, opts httpapi.Options) *httptest.Server {
	t.Helper()
	users, err := demo.NewUsers(password, 4)
	if err != nil {
		t.Fatal(err)
	}
	if opts.SessionSecrets == nil {
		opts.SessionSecrets = [][]byte{[]byte("a demo test secret of 32 bytes or more")}
	}
	api, err := httpapi.New(s, users, demo.NewCatalogue(&demo.CatalogueOptions{Delay: 0}), &opts)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// postLogin signs in as the demo shop's owner with password; the body is
// closed, the cookies and status kept.
func postLogin(t *testing.T, base, password string) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"tenant": "tehran-gold", "email": "owner@tehran-gold.test", "password": password})
	res, err := http.Post(base+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}
