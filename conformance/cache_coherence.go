package conformance

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

// testCacheStats: exact counters for a scripted mix of hits, misses, loads
// and injected store errors.
func testCacheStats(e *env) {
	t, ctx := e.t, e.ctx
	fs, ctl := wrapFaults(e.s)
	var loads atomic.Int64
	load := func(context.Context) (string, error) { loads.Add(1); return "loaded", nil }

	c := newCache(e, fs, cache.Policy{Name: "stats", TTL: time.Hour}, &cache.Options[string]{LocalEntries: -1})
	_, err := c.Get(ctx, "shop", "k1") // miss
	require.ErrorIs(t, err, cache.ErrNotFound)
	_, err = c.GetOrLoad(ctx, "shop", "k1", load) // miss, load
	require.NoError(t, err)
	_, err = c.Get(ctx, "shop", "k1") // hit
	require.NoError(t, err)
	_, err = c.GetOrLoad(ctx, "shop", "k1", load) // hit
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, "shop", "k2", "set"))
	_, err = c.Get(ctx, "shop", "k2") // hit
	require.NoError(t, err)
	ctl.fail.Store(true)
	_, err = c.Get(ctx, "shop", "k1") // error, not a miss
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = c.GetOrLoad(ctx, "shop", "k3", load) // error; no fallback: no load
	require.ErrorIs(t, err, store.ErrUnavailable)
	ctl.fail.Store(false)
	_, err = c.GetOrLoad(ctx, "shop", "k3", load) // miss, load
	require.NoError(t, err)
	st := c.Stats()
	assert.Equal(t, cache.Stats{Hits: 3, Misses: 3, Errors: 2, Loads: 2}, st)
	assert.InDelta(t, 0.5, st.HitRate(), 1e-9)
	assert.EqualValues(t, 2, loads.Load())
	if e.hasCap(store.CapUsage) {
		u, err := c.StoreUsage(ctx)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, u.Keys, int64(2), "the store's key count holds at least the two entries")
		t.Logf("store usage: %d keys, %d bytes", u.Keys, u.Bytes)
	}

	// Local hits, and read-your-writes through them.
	d := newCache(e, fs, cache.Policy{Name: "stats-local", TTL: time.Hour}, &cache.Options[string]{MaxStale: time.Minute})
	require.NoError(t, d.Set(ctx, "shop", "k", "v1"))
	for range 3 {
		v, err := d.Get(ctx, "shop", "k") // a store hit, then local ones
		require.NoError(t, err)
		require.Equal(t, "v1", v)
	}
	require.NoError(t, d.Set(ctx, "shop", "k", "v2"))
	v, err := d.Get(ctx, "shop", "k")
	require.NoError(t, err)
	assert.Equal(t, "v2", v, "a local value does not hide the instance's own write")
	st = d.Stats()
	assert.EqualValues(t, 2, st.LocalHits)
	assert.EqualValues(t, 2, st.Hits)
	assert.Zero(t, st.Misses+st.Errors)

	// A policy that falls back to the loader still counts the failure.
	f := newCache[string](e, fs, cache.Policy{Name: "stats-fallback", TTL: time.Hour, FallbackToLoader: true}, nil)
	ctl.fail.Store(true)
	v, err = f.GetOrLoad(ctx, "shop", "k", load)
	ctl.fail.Store(false)
	require.NoError(t, err)
	assert.Equal(t, "loaded", v)
	st = f.Stats()
	assert.EqualValues(t, 1, st.Errors)
	assert.EqualValues(t, 1, st.Loads)
	assert.Zero(t, st.Misses+st.Hits+st.LocalHits)
}

// testCacheStoreFailure: when the store fails GetOrLoad falls back to the
// loader (by policy) or returns the failure, and never waits past the
// caller's deadline, on injected failures and, where the harness can, on a
// stalled server.
func testCacheStoreFailure(e *env) {
	t, ctx := e.t, e.ctx
	load := func(context.Context) (string, error) { return "from the database", nil }
	fs, ctl := wrapFaults(e.s)
	strict := newCache[string](e, fs, cache.Policy{Name: "strict", TTL: time.Hour}, nil)
	lenient := newCache[string](e, fs, cache.Policy{Name: "lenient", TTL: time.Hour, FallbackToLoader: true}, nil)
	ctl.fail.Store(true)
	_, err := strict.GetOrLoad(ctx, "shop", "k", func(context.Context) (string, error) {
		t.Error("the loader is not called without FallbackToLoader")
		return "", nil
	})
	assert.ErrorIs(t, err, store.ErrUnavailable, "the store's failure is returned, not hidden")
	v, err := lenient.GetOrLoad(ctx, "shop", "k", load)
	require.NoError(t, err)
	assert.Equal(t, "from the database", v)
	ctl.fail.Store(false)
	assert.EqualValues(t, 1, strict.Stats().Errors)
	assert.EqualValues(t, 1, lenient.Stats().Errors)
	_, err = lenient.Get(ctx, "shop", "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "a value loaded around a failed store is not stored")

	st, ok := e.h.(Staller)
	if !ok {
		t.Log("harness is not a Staller (no network to stall): checked injected failures only")
		return
	}
	s, stall, err := st.StalledStore(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Logf("harness cannot stall this target (%v): checked injected failures only", err)
		return
	}
	require.NoError(t, err)
	strict = newCache[string](e, s, cache.Policy{Name: "strict", TTL: time.Hour}, nil)
	lenient = newCache(e, s, cache.Policy{Name: "lenient", TTL: time.Hour, FallbackToLoader: true},
		&cache.Options[string]{StoreTimeout: 100 * time.Millisecond})
	require.NoError(t, s.Ping(ctx))
	stall()
	const deadline = 300 * time.Millisecond
	for name, c := range map[string]*cache.Cache[string]{"strict": strict, "lenient": lenient} {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		type res struct {
			v   string
			err error
		}
		done := make(chan res, 1)
		go func() {
			v, err := c.GetOrLoad(cctx, "shop", "stalled-"+name, load)
			done <- res{v, err}
		}()
		select {
		case r := <-done:
			t.Logf("%s: GetOrLoad on a stalled store returned after %v", name, time.Since(start).Round(time.Millisecond))
			if name == "strict" {
				assert.Error(t, r.err, "strict: the stall is an error")
				assert.True(t, errors.Is(r.err, store.ErrUnavailable) || errors.Is(r.err, context.DeadlineExceeded), "strict: %v", r.err)
			} else {
				require.NoError(t, r.err, "lenient: StoreTimeout leaves time to load")
				assert.Equal(t, "from the database", r.v)
			}
		case <-time.After(deadline + 10*time.Second):
			t.Errorf("%s: GetOrLoad on a stalled store did not return within 10s of its %v deadline", name, deadline)
		}
		cancel()
		assert.Positive(t, c.Stats().Errors, "%s counts the failure", name)
	}
}

// testCacheReadYourWrites: an instance reads back its own writes and
// invalidations at once, client-side cache and local values included.
func testCacheReadYourWrites(e *env) {
	t, ctx := e.t, e.ctx
	p := cache.Policy{Name: "ryw", TTL: time.Hour}
	c := newCache(e, e.s, p, &cache.Options[string]{MaxStale: time.Minute})
	for i := range 20 {
		want := "v" + strconv.Itoa(i)
		require.NoError(t, c.Set(ctx, "shop", "k", want))
		for range 2 {
			v, err := c.Get(ctx, "shop", "k")
			require.NoError(t, err)
			require.Equal(t, want, v, "read-your-writes after Set %d", i)
		}
		v, err := c.GetOrLoad(ctx, "shop", "k", func(context.Context) (string, error) { return "loaded", nil })
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
	for name, op := range map[string]func() error{
		"Delete":           func() error { return c.Delete(ctx, "shop", "k") },
		"InvalidateTenant": func() error { return c.InvalidateTenant(ctx, "shop") },
		"InvalidateTag":    func() error { return c.InvalidateTag(ctx, "shop", "ryw") },
		"Clear":            func() error { _, err := c.Clear(ctx, "shop"); return err },
	} {
		require.NoError(t, c.Set(ctx, "shop", "k", "before "+name))
		for range 2 {
			_, err := c.Get(ctx, "shop", "k")
			require.NoError(t, err)
		}
		err := op()
		if errors.Is(err, cache.ErrNoScanner) {
			continue
		}
		require.NoError(t, err)
		_, err = c.Get(ctx, "shop", "k")
		assert.ErrorIs(t, err, cache.ErrNotFound, "read-your-writes after %s", name)
	}
}

// testCacheSecondInstance: another instance, over its own store, sees a
// change within MaxStale.
func testCacheSecondInstance(e *env) {
	t, ctx := e.t, e.ctx
	const maxStale = 300 * time.Millisecond
	p := cache.Policy{Name: "coherent", TTL: time.Hour}
	opts := &cache.Options[string]{MaxStale: maxStale}
	a := newCache(e, e.s, p, opts)
	b := newCache(e, e.newStore(), p, opts)
	for _, change := range []struct {
		name string
		do   func(k string) error
		want string // "" for a miss
	}{
		{"Set", func(k string) error { return a.Set(ctx, "shop", k, "new") }, "new"},
		{"Delete", func(k string) error { return a.Delete(ctx, "shop", k) }, ""},
		{"InvalidateTenant", func(string) error { return a.InvalidateTenant(ctx, "shop") }, ""},
		{"InvalidateTag", func(string) error { return a.InvalidateTag(ctx, "shop", "coherent") }, ""},
	} {
		k := "k-" + change.name
		require.NoError(t, a.Set(ctx, "shop", k, "old"))
		for range 3 {
			v, err := b.Get(ctx, "shop", k)
			require.NoError(t, err)
			require.Equal(t, "old", v)
		}
		require.NoError(t, change.do(k))
		written := time.Now()
		seen := time.Duration(-1)
		for {
			start := time.Now()
			v, err := b.Get(ctx, "shop", k)
			got := v
			if errors.Is(err, cache.ErrNotFound) {
				got = ""
			} else {
				require.NoError(t, err)
			}
			if got == change.want && seen < 0 {
				seen = time.Since(written)
			}
			if start.Sub(written) > maxStale {
				require.Equal(t, change.want, got, "%s: a read that began %v after another instance's change (MaxStale %v)",
					change.name, start.Sub(written), maxStale)
				break
			}
			timer := time.NewTimer(5 * time.Millisecond)
			<-timer.C
		}
		t.Logf("%s: the other instance saw the change after %v", change.name, seen)
	}
}
