package conformance

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

type cacheCase struct {
	name string
	run  func(e *env)
}

var cacheCases = []cacheCase{
	{"TenantIsolation", testCacheTenantIsolation},
	{"GlobalPolicy", testCacheGlobalPolicy},
	{"TTLAndJitter", testCacheTTLJitter},
	{"NegativeCaching", testCacheNegative},
	{"StaleWhileRevalidate", testCacheSWR},
	{"Stampede", testCacheStampede},
	{"StampedeAcrossProcesses", testCacheStampedeProcesses},
	{"CrashedLoaderLeaseExpires", testCacheCrashedLoader},
	{"TenantInvalidation100k", testCacheTenantInvalidation},
	{"TagInvalidation", testCacheTagInvalidation},
	{"PatternInvalidation", testCachePatternInvalidation},
	{"ScopedClear", testCacheScopedClear},
	{"NoStaleSet", testCacheNoStaleSet},
	{"Stats", testCacheStats},
	{"StoreFailure", testCacheStoreFailure},
	{"ReadYourWrites", testCacheReadYourWrites},
	{"SecondInstanceSeesChange", testCacheSecondInstance},
	{"Counter", testCacheCounter},
	{"ScriptBodiesAgree", testCacheScripts},
}

// RunCache runs the cache layer's cases against stores from newHarness, each
// case on a harness of its own, as subtests named after the cases.
func RunCache(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	for _, c := range cacheCases {
		t.Run(c.name, func(t *testing.T) {
			c.run(newEnv(t, newHarness))
		})
	}
}

// layerClock is the cache's clock in a case: on a harness with a Clock it
// is fake and moves with the store's (advance moves both); otherwise it is
// the machine's.
type layerClock struct {
	e    *env
	fake bool
	mu   sync.Mutex
	now  time.Time
}

func newLayerClock(e *env) *layerClock {
	lc := &layerClock{e: e}
	if c, ok := e.clock(); ok {
		lc.fake = true
		lc.now = farTime
		c.SetNow(farTime)
	}
	return lc
}

func (lc *layerClock) Now() time.Time {
	if !lc.fake {
		return time.Now()
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.now
}

// advance moves the cache's and the store's time by d (on a fake clock).
func (lc *layerClock) advance(d time.Duration) {
	if !lc.fake {
		return
	}
	lc.mu.Lock()
	lc.now = lc.now.Add(d)
	lc.mu.Unlock()
	c, _ := lc.e.clock()
	c.Advance(d)
	c.SetNow(lc.Now())
}

// newCache makes a cache under the case's namespace.
func newCache[T any](e *env, s store.Store, p cache.Policy, opts *cache.Options[T]) *cache.Cache[T] {
	e.t.Helper()
	var o cache.Options[T]
	if opts != nil {
		o = *opts
	}
	if o.Namespace.IsZero() {
		o.Namespace = e.ns
	}
	c, err := cache.New[T](s, p, &o)
	require.NoError(e.t, err)
	return c
}

// faultStore wraps a store, counts the calls made through it, and fails
// them all with ErrUnavailable while fail is set. Capability looks through
// it (Unwrap) for the Scanner and the StatsReporter; the cached reader is
// wrapped too (cachedFaultStore) so that injected failures reach it.
type faultStore struct {
	store.Store
	calls atomic.Int64
	fail  atomic.Bool
}

type cachedFaultStore struct {
	*faultStore
	cr store.CachedReader
}

// wrapFaults returns the wrapper (offering GetCached only if s does) and
// its controls.
func wrapFaults(s store.Store) (store.Store, *faultStore) {
	f := &faultStore{Store: s}
	if cr, ok := store.Capability[store.CachedReader](s); ok {
		return &cachedFaultStore{faultStore: f, cr: cr}, f
	}
	return f, f
}

var errInjected = fmt.Errorf("%w: injected by the conformance suite", store.ErrUnavailable)

func (f *faultStore) op() error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errInjected
	}
	return nil
}

func (f *faultStore) Unwrap() store.Store { return f.Store }

func (f *cachedFaultStore) GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error) {
	if err := f.op(); err != nil {
		return nil, err
	}
	return f.cr.GetCached(ctx, key, maxStale)
}

func (f *faultStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.op(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, key)
}

func (f *faultStore) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := f.op(); err != nil {
		return nil, err
	}
	return f.Store.MGet(ctx, keys...)
}

func (f *faultStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := f.op(); err != nil {
		return err
	}
	return f.Store.Set(ctx, key, val, ttl)
}

func (f *faultStore) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := f.op(); err != nil {
		return false, err
	}
	return f.Store.SetNX(ctx, key, val, ttl)
}

func (f *faultStore) Delete(ctx context.Context, keys ...string) (int64, error) {
	if err := f.op(); err != nil {
		return 0, err
	}
	return f.Store.Delete(ctx, keys...)
}

func (f *faultStore) HGet(ctx context.Context, key, field string) ([]byte, error) {
	if err := f.op(); err != nil {
		return nil, err
	}
	return f.Store.HGet(ctx, key, field)
}

func (f *faultStore) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	if err := f.op(); err != nil {
		return err
	}
	return f.Store.HSet(ctx, key, fields)
}

func (f *faultStore) HDel(ctx context.Context, key string, fields ...string) (int64, error) {
	if err := f.op(); err != nil {
		return 0, err
	}
	return f.Store.HDel(ctx, key, fields...)
}

func (f *faultStore) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	if err := f.op(); err != nil {
		return nil, err
	}
	return f.Store.HGetAll(ctx, key)
}

func (f *faultStore) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := f.op(); err != nil {
		return 0, err
	}
	return f.Store.IncrBy(ctx, key, delta, ttl)
}

func (f *faultStore) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := f.op(); err != nil {
		return false, err
	}
	return f.Store.Expire(ctx, key, ttl)
}

func (f *faultStore) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := f.op(); err != nil {
		return 0, err
	}
	return f.Store.TTL(ctx, key)
}

func (f *faultStore) Eval(ctx context.Context, s *store.Script, keys []string, args ...string) (store.Value, error) {
	if err := f.op(); err != nil {
		return store.Value{}, err
	}
	return f.Store.Eval(ctx, s, keys, args...)
}

func (f *faultStore) Ping(ctx context.Context) error {
	if err := f.op(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// Close does not close the wrapped store: the case's env owns it.
func (f *faultStore) Close() error { return nil }

// pollUntil calls check until it reports true or d passes, failing the case
// then.
func pollUntil(t *testing.T, d time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		timer := time.NewTimer(wait)
		<-timer.C
		wait = min(2*wait, 50*time.Millisecond)
	}
}
