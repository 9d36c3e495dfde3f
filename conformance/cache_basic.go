package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

// hostileTenants are tenant ids (and keys) that must not reach each other.
func hostileTenants() []string {
	return []string{"a", "*", "{", "}", ":", "a:b", "a%3Ab", "{a}", "a}", "line\nbreak", "\r\n", "\x00",
		"\xff\xfe\xfd", "\xc3\x28", "é", " ", "a*", "?", "[x]", "t:a", "g", strings.Repeat("t", 10<<10)}
}

func testCacheTenantIsolation(e *env) {
	t, ctx := e.t, e.ctx
	c := newCache[string](e, e.s, cache.Policy{Name: "iso", TTL: time.Hour}, nil)
	tenants := hostileTenants()
	for i, tn := range tenants {
		for j, k := range []string{"k", "*", "\n" + tn} {
			require.NoError(t, c.Set(ctx, tn, k, fmt.Sprintf("v%d-%d", i, j)), "Set in tenant %d", i)
		}
	}
	// A second instance, over another store, with nothing local.
	other := newCache[string](e, e.newStore(), cache.Policy{Name: "iso", TTL: time.Hour}, nil)
	for _, r := range []*cache.Cache[string]{c, other} {
		for i, tn := range tenants {
			for j, k := range []string{"k", "*", "\n" + tn} {
				v, err := r.Get(ctx, tn, k)
				require.NoError(t, err, "Get in tenant %d", i)
				require.Equal(t, fmt.Sprintf("v%d-%d", i, j), v, "tenant %d key %d reads its own value", i, j)
			}
		}
	}
	var loads atomic.Int64
	v, err := c.GetOrLoad(ctx, "b", "k", func(context.Context) (string, error) { loads.Add(1); return "b's own", nil })
	require.NoError(t, err)
	assert.Equal(t, "b's own", v, "a tenant without the key loads its own value")
	assert.EqualValues(t, 1, loads.Load())

	require.NoError(t, c.InvalidateTenant(ctx, "*"))
	_, err = c.Get(ctx, "*", "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "the invalidated tenant misses")
	for i, tn := range tenants {
		if tn == "*" {
			continue
		}
		v, err := c.Get(ctx, tn, "k")
		require.NoError(t, err, "tenant %d after tenant * was invalidated", i)
		assert.Equal(t, fmt.Sprintf("v%d-0", i), v)
	}

	huge := strings.Repeat("x", 10<<20)
	loaderCalled := false
	load := func(context.Context) (string, error) { loaderCalled = true; return "", nil }
	assert.ErrorIs(t, c.Set(ctx, huge, "k", "v"), store.ErrInvalidKey, "a 10 MB tenant id is refused")
	_, err = c.Get(ctx, huge, "k")
	assert.ErrorIs(t, err, store.ErrInvalidKey)
	_, err = c.GetOrLoad(ctx, huge, "k", load)
	assert.ErrorIs(t, err, store.ErrInvalidKey)
	assert.False(t, loaderCalled, "a refused tenant never reaches the loader")
	assert.ErrorIs(t, c.InvalidateTenant(ctx, huge), store.ErrInvalidKey)
	_, err = c.Clear(ctx, huge)
	assert.ErrorIs(t, err, store.ErrInvalidKey)
	assert.ErrorIs(t, c.Set(ctx, "a", huge, "v"), store.ErrInvalidKey, "a 10 MB key is refused")
	assert.ErrorIs(t, c.Set(ctx, "", "k", "v"), cache.ErrInvalidTenant, "a tenant-scoped cache needs a tenant")
	_, err = c.Get(ctx, "", "k")
	assert.ErrorIs(t, err, cache.ErrInvalidTenant)
}

func testCacheGlobalPolicy(e *env) {
	t, ctx := e.t, e.ctx
	p := cache.GoldPrice
	gold := newCache[float64](e, e.s, p, nil)
	var loads atomic.Int64
	load := func(context.Context) (float64, error) { loads.Add(1); return 2381.5, nil }
	for range 3 {
		v, err := gold.GetOrLoad(ctx, "", "XAU", load)
		require.NoError(t, err)
		assert.InDelta(t, 2381.5, v, 0)
	}
	assert.EqualValues(t, 1, loads.Load(), "the gold price is loaded once for everyone")
	_, err := gold.GetOrLoad(ctx, "shop-1", "XAU", load)
	assert.ErrorIs(t, err, cache.ErrInvalidTenant, "a global cache takes no tenant")

	// A tenant named like the global scope does not share its entries.
	shops := newCache[float64](e, e.s, cache.Policy{Name: p.Name, TTL: time.Hour}, nil)
	for _, tn := range []string{"g", "{g}", "t"} {
		_, err := shops.Get(ctx, tn, "XAU")
		assert.ErrorIs(t, err, cache.ErrNotFound, "tenant %q does not see the global entry", tn)
	}
	require.NoError(t, gold.InvalidateTenant(ctx, ""))
	_, err = gold.Get(ctx, "", "XAU")
	assert.ErrorIs(t, err, cache.ErrNotFound, "invalidating the global scope")
}

func testCacheTTLJitter(e *env) {
	t, ctx := e.t, e.ctx
	lc := newLayerClock(e)
	p := cache.Policy{Name: "ttl", TTL: 10 * time.Second, Jitter: 2 * time.Second}
	if !lc.fake {
		p.TTL, p.Jitter = 2*time.Second, time.Second
	}
	c := newCache(e, e.s, p, &cache.Options[string]{Clock: lc.Now, MaxStale: -1})
	const n = 40
	ttls := map[time.Duration]bool{}
	written := make([]time.Time, n)
	for i := range n {
		k := "k" + strconv.Itoa(i)
		written[i] = time.Now()
		require.NoError(t, c.Set(ctx, "shop", k, "v"))
		sk, err := c.Key("shop", k)
		require.NoError(t, err)
		ttl, err := e.s.TTL(ctx, sk)
		require.NoError(t, err)
		ttls[ttl] = true
		assert.LessOrEqual(t, ttl, p.TTL, "an entry never outlives its policy's TTL")
		if lc.fake {
			assert.GreaterOrEqual(t, ttl, p.TTL-p.Jitter, "jitter shortens by at most Jitter")
		} else {
			// Less the time since the write, and a millisecond: TTL reads
			// the server's PTTL, which rounds down.
			assert.GreaterOrEqual(t, ttl, p.TTL-p.Jitter-time.Since(written[i])-time.Millisecond, "jitter shortens by at most Jitter")
		}
		_, err = c.Get(ctx, "shop", k)
		if lc.fake || time.Since(written[i]) < p.TTL-p.Jitter {
			require.NoError(t, err, "a fresh entry hits")
		}
	}
	assert.Greater(t, len(ttls), 1, "jitter spreads the TTLs of entries written together")
	if lc.fake {
		lc.advance(p.TTL - p.Jitter - time.Millisecond)
		for i := range n {
			_, err := c.Get(ctx, "shop", "k"+strconv.Itoa(i))
			require.NoError(t, err, "entry %d before TTL-Jitter", i)
		}
		lc.advance(p.Jitter + 2*time.Millisecond)
	}
	for i := range n {
		k := "k" + strconv.Itoa(i)
		pollUntil(t, time.Until(written[i].Add(p.TTL+5*time.Second)), "entry "+k+" expires", func() bool {
			_, err := c.Get(ctx, "shop", k)
			if err != nil && !errors.Is(err, cache.ErrNotFound) {
				t.Fatal(err)
			}
			return err != nil
		})
		sk, _ := c.Key("shop", k)
		e.waitGone(sk, p.TTL)
	}
}

func testCacheNegative(e *env) {
	t, ctx := e.t, e.ctx
	lc := newLayerClock(e)
	p := cache.Policy{Name: "neg", TTL: time.Hour, NegativeTTL: 5 * time.Second}
	if !lc.fake {
		p.NegativeTTL = 300 * time.Millisecond
	}
	c := newCache(e, e.s, p, &cache.Options[string]{Clock: lc.Now})
	var loads atomic.Int64
	missing := func(context.Context) (string, error) {
		loads.Add(1)
		return "", fmt.Errorf("no customer 42: %w", cache.ErrNotFound)
	}
	start := time.Now()
	for range 3 {
		_, err := c.GetOrLoad(ctx, "shop", "c42", missing)
		require.ErrorIs(t, err, cache.ErrNotFound)
	}
	if lc.fake || time.Since(start) < p.NegativeTTL {
		assert.EqualValues(t, 1, loads.Load(), "a not-found is cached for NegativeTTL")
	}
	_, err := c.Get(ctx, "shop", "c42")
	assert.ErrorIs(t, err, cache.ErrNotFound)
	lc.advance(p.NegativeTTL + time.Millisecond)
	found := func(context.Context) (string, error) { loads.Add(1); return "now here", nil }
	pollUntil(t, p.NegativeTTL+5*time.Second, "the cached not-found expires", func() bool {
		v, err := c.GetOrLoad(ctx, "shop", "c42", found)
		return err == nil && v == "now here"
	})

	// A loader's error is never cached.
	boom := errors.New("database down")
	var failing atomic.Int64
	for range 3 {
		_, err := c.GetOrLoad(ctx, "shop", "c43", func(context.Context) (string, error) { failing.Add(1); return "", boom })
		require.ErrorIs(t, err, boom)
	}
	assert.EqualValues(t, 3, failing.Load(), "every call after a loader error loads again")

	// Without NegativeTTL a not-found is not cached either.
	plain := newCache(e, e.s, cache.Policy{Name: "noneg", TTL: time.Hour}, &cache.Options[string]{Clock: lc.Now})
	loads.Store(0)
	for range 2 {
		_, err := plain.GetOrLoad(ctx, "shop", "c42", missing)
		require.ErrorIs(t, err, cache.ErrNotFound)
	}
	assert.EqualValues(t, 2, loads.Load())
}

func testCacheSWR(e *env) {
	t, ctx := e.t, e.ctx
	lc := newLayerClock(e)
	p := cache.Policy{Name: "swr", TTL: 10 * time.Second, StaleWhileRevalidate: time.Minute}
	if !lc.fake {
		p.TTL = 300 * time.Millisecond
	}
	c := newCache(e, e.s, p, &cache.Options[string]{Clock: lc.Now})
	v, err := c.GetOrLoad(ctx, "shop", "kpi", func(context.Context) (string, error) { return "v1", nil })
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	lc.advance(p.TTL + time.Millisecond)
	pollUntil(t, p.TTL+5*time.Second, "the entry goes stale", func() bool {
		_, err := c.Get(ctx, "shop", "kpi") // Get serves fresh entries only
		return errors.Is(err, cache.ErrNotFound)
	})
	release := make(chan struct{})
	var refreshes atomic.Int64
	slow := func(ctx context.Context) (string, error) {
		refreshes.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "v2", nil
	}
	for range 5 {
		v, err = c.GetOrLoad(ctx, "shop", "kpi", slow)
		require.NoError(t, err)
		assert.Equal(t, "v1", v, "a stale entry is served at once while it refreshes")
	}
	close(release)
	pollUntil(t, 10*time.Second, "the refresh stores the new value", func() bool {
		v, err := c.Get(ctx, "shop", "kpi")
		return err == nil && v == "v2"
	})
	pollUntil(t, 10*time.Second, "the refresh is counted", func() bool { return c.Stats().Refreshes == 1 })
	assert.EqualValues(t, 1, refreshes.Load(), "one refresh for many stale hits")
	assert.EqualValues(t, 5, c.Stats().StaleHits)
}

func testCacheCounter(e *env) {
	t, ctx := e.t, e.ctx
	lc := newLayerClock(e)
	p := cache.Policy{Name: "logins", TTL: 10 * time.Second}
	if !lc.fake {
		p.TTL = 300 * time.Millisecond
	}
	c := newCache[string](e, e.s, p, nil)
	for i := 1; i <= 3; i++ {
		n, err := c.Incr(ctx, "shop-a", "u1", 1)
		require.NoError(t, err)
		require.EqualValues(t, i, n)
	}
	n, err := c.Incr(ctx, "shop-b", "u1", 5)
	require.NoError(t, err)
	assert.EqualValues(t, 5, n, "counters are per tenant")
	lc.advance(p.TTL + time.Millisecond)
	pollUntil(t, p.TTL+5*time.Second, "the counter expires with the policy's TTL", func() bool {
		m, err := c.Incr(ctx, "shop-a", "u1", 1)
		require.NoError(t, err)
		return m == 1
	})
}
