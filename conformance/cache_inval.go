package conformance

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

// testCacheTenantInvalidation: a tenant with 100,000 entries is invalidated
// in a bounded number of store calls, after which every one of them misses,
// and other tenants keep theirs.
func testCacheTenantInvalidation(e *env) {
	t, ctx := e.t, e.ctx
	const writers = 8
	n := 100_000
	if raceDetector {
		n = 20_000
		t.Logf("under the race detector: %d keys instead of 100,000", n)
	}
	p := cache.Policy{Name: "bulk", TTL: time.Hour}
	fs, ctl := wrapFaults(e.s)
	c := newCache[string](e, fs, p, nil)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			items := make(map[string]string, n/writers)
			for i := w; i < n; i += writers {
				items["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i)
			}
			errs <- c.SetMany(ctx, "big-shop", items)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, c.Set(ctx, "small-shop", "k1", "kept"))
	t.Logf("%d entries written in %v", n, time.Since(start).Round(time.Millisecond))
	for _, i := range []int{0, 1, n / 2, n - 1} {
		v, err := c.Get(ctx, "big-shop", "k"+strconv.Itoa(i))
		require.NoError(t, err)
		require.Equal(t, "v"+strconv.Itoa(i), v)
	}

	before := ctl.calls.Load()
	require.NoError(t, c.InvalidateTenant(ctx, "big-shop"))
	calls := ctl.calls.Load() - before
	assert.LessOrEqual(t, calls, int64(1), "invalidating %d entries takes O(1) store calls", n)

	start = time.Now()
	reader := newCache[string](e, e.newStore(), p, nil)
	var hits atomic.Int64
	var failed atomic.Value
	const readers, chunk = 8, 1000
	for r := range readers {
		wg.Go(func() {
			for from := r * chunk; from < n; from += readers * chunk {
				keys := make([]string, 0, chunk)
				for i := from; i < min(from+chunk, n); i++ {
					keys = append(keys, "k"+strconv.Itoa(i))
				}
				got, err := c.GetMany(ctx, "big-shop", keys)
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				hits.Add(int64(len(got)))
				// And one key in a hundred through Get, on both instances.
				for i := 0; i < len(keys); i += 100 {
					for _, c := range []*cache.Cache[string]{c, reader} {
						_, err := c.Get(ctx, "big-shop", keys[i])
						switch {
						case err == nil:
							hits.Add(1)
						case !errors.Is(err, cache.ErrNotFound):
							failed.CompareAndSwap(nil, err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	assert.Zero(t, hits.Load(), "every old entry misses after the invalidation, on this instance and another")
	t.Logf("%d entries checked in %v", n, time.Since(start).Round(time.Millisecond))
	v, err := c.Get(ctx, "small-shop", "k1")
	require.NoError(t, err)
	assert.Equal(t, "kept", v, "another tenant keeps its entries")

	// Delete the entries in scan batches now: the case's cleanup would
	// delete them one by one.
	if _, ok := store.Capability[store.Scanner](e.s); ok {
		start = time.Now()
		deleted, err := c.Clear(ctx, "big-shop")
		require.NoError(t, err)
		assert.EqualValues(t, n, deleted, "Clear deletes the tenant's entries")
		t.Logf("%d entries cleared in %v", deleted, time.Since(start).Round(time.Millisecond))
	}
}

func testCacheTagInvalidation(e *env) {
	t, ctx := e.t, e.ctx
	kpi := newCache[string](e, e.s, cache.Policy{Name: "kpi", TTL: time.Hour}, nil)
	cust := newCache[string](e, e.s, cache.Policy{Name: "customer", TTL: time.Hour, Tags: []string{"crm"}}, nil)
	for _, tn := range []string{"a", "b"} {
		for i := range 5 {
			require.NoError(t, kpi.Set(ctx, tn, "k"+strconv.Itoa(i), tn+"-kpi"))
			require.NoError(t, cust.Set(ctx, tn, "k"+strconv.Itoa(i), tn+"-cust"))
		}
	}
	require.NoError(t, kpi.InvalidateTag(ctx, "a", "kpi"))
	for i := range 5 {
		k := "k" + strconv.Itoa(i)
		_, err := kpi.Get(ctx, "a", k)
		assert.ErrorIs(t, err, cache.ErrNotFound, "tenant a's KPI entries miss")
		v, err := kpi.Get(ctx, "b", k)
		require.NoError(t, err)
		assert.Equal(t, "b-kpi", v, "tenant b's KPI entries stay")
		v, err = cust.Get(ctx, "a", k)
		require.NoError(t, err)
		assert.Equal(t, "a-cust", v, "tenant a's other entries stay")
	}
	require.NoError(t, cust.InvalidateTag(ctx, "b", "crm"))
	_, err := cust.Get(ctx, "b", "k0")
	assert.ErrorIs(t, err, cache.ErrNotFound, "an extra tag of the policy")
	v, err := cust.Get(ctx, "a", "k0")
	require.NoError(t, err)
	assert.Equal(t, "a-cust", v)
	// After the invalidation, new writes hit again.
	require.NoError(t, kpi.Set(ctx, "a", "k0", "again"))
	v, err = kpi.Get(ctx, "a", "k0")
	require.NoError(t, err)
	assert.Equal(t, "again", v)
}

// slotTenants returns tenants whose keys fall in each third of the slot
// range, which a 3-master cluster gives to three different masters.
func slotTenants(c *cache.Cache[string], perThird int) []string {
	var out []string
	count := [3]int{}
	for i := 0; len(out) < 3*perThird; i++ {
		tn := "shop-" + strconv.Itoa(i)
		k, err := c.Key(tn, "x")
		if err != nil {
			panic(err)
		}
		third := min(store.Slot(k)*3/store.SlotCount, 2)
		if count[third] < perThird {
			count[third]++
			out = append(out, tn)
		}
	}
	return out
}

func testCachePatternInvalidation(e *env) {
	e.skipUnless(store.CapScan)
	t, ctx := e.t, e.ctx
	c := newCache[string](e, e.s, cache.Policy{Name: "reports", TTL: time.Hour}, nil)
	other := newCache[string](e, e.s, cache.Policy{Name: "other", TTL: time.Hour}, nil)
	tenants := slotTenants(c, 4)
	for _, tn := range tenants {
		for _, k := range []string{"report:1", "report:2", "summary", "x-report:3"} {
			require.NoError(t, c.Set(ctx, tn, k, k))
		}
		require.NoError(t, other.Set(ctx, tn, "report:1", "other"))
	}
	n, err := c.InvalidatePattern(ctx, "report:*")
	require.NoError(t, err)
	assert.EqualValues(t, 2*len(tenants), n, "every matching entry, in every tenant, on every master, counted")
	for _, tn := range tenants {
		for _, k := range []string{"report:1", "report:2"} {
			_, err := c.Get(ctx, tn, k)
			assert.ErrorIs(t, err, cache.ErrNotFound, "%s/%s", tn, k)
		}
		for _, k := range []string{"summary", "x-report:3"} {
			v, err := c.Get(ctx, tn, k)
			require.NoError(t, err, "%s/%s does not match", tn, k)
			assert.Equal(t, k, v)
		}
		v, err := other.Get(ctx, tn, "report:1")
		require.NoError(t, err, "another policy's entries stay")
		assert.Equal(t, "other", v)
	}
	n, err = c.InvalidatePattern(ctx, "report:*")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to delete")
}

func testCacheScopedClear(e *env) {
	e.skipUnless(store.CapScan)
	t, ctx := e.t, e.ctx
	cacheNS, err := e.ns.Sub("cache")
	require.NoError(t, err)
	sessionNS, err := e.ns.Sub("session")
	require.NoError(t, err)
	p := cache.Policy{Name: "clear", TTL: time.Hour}
	c := newCache(e, e.s, p, &cache.Options[string]{Namespace: cacheNS})
	tenants := []string{"shop", "shop2", "shop:x", "sho", "*"}
	for _, tn := range tenants {
		for i := range 5 {
			require.NoError(t, c.Set(ctx, tn, "k"+strconv.Itoa(i), tn))
		}
		_, err := c.Incr(ctx, tn, "counter", 1)
		require.NoError(t, err)
	}
	sessionKey, err := sessionNS.Key("shop", "session-1")
	require.NoError(t, err)
	require.NoError(t, e.s.Set(ctx, sessionKey, []byte("another layer"), 0))
	rawKey := e.key("shop")
	require.NoError(t, e.s.Set(ctx, rawKey, []byte("not the cache's"), 0))

	n, err := c.Clear(ctx, "shop")
	require.NoError(t, err)
	assert.EqualValues(t, 6, n, "Clear deletes the tenant's 5 entries and its counter")
	for i := range 5 {
		_, err := c.Get(ctx, "shop", "k"+strconv.Itoa(i))
		assert.ErrorIs(t, err, cache.ErrNotFound)
	}
	for _, tn := range tenants[1:] {
		for i := range 5 {
			v, err := c.Get(ctx, tn, "k"+strconv.Itoa(i))
			require.NoError(t, err, "tenant %q keeps its entries", tn)
			assert.Equal(t, tn, v)
		}
		m, err := c.Incr(ctx, tn, "counter", 0)
		require.NoError(t, err)
		assert.EqualValues(t, 1, m, "tenant %q keeps its counter", tn)
	}
	for _, k := range []string{sessionKey, rawKey} {
		_, err := e.s.Get(ctx, k)
		assert.NoError(t, err, "a key outside the cache stays: %q", k)
	}
	m, err := c.Incr(ctx, "shop", "counter", 0)
	require.NoError(t, err)
	assert.Zero(t, m, "the cleared tenant's counter is gone")
	require.NoError(t, c.Set(ctx, "shop", "k0", "after"))
	v, err := c.Get(ctx, "shop", "k0")
	require.NoError(t, err)
	assert.Equal(t, "after", v, "a cleared tenant caches again")
}
