package conformance

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/cache"
)

// slowLoad waits d (the loader's own work, or ctx's end) and returns v.
func slowLoad(ctx context.Context, d time.Duration, v string) (string, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return v, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// testCacheStampede: 4 cache instances, each over its own store client, ×
// 250 goroutines miss one key at once; a 200 ms loader runs exactly once.
func testCacheStampede(e *env) {
	t, ctx := e.t, e.ctx
	const instances, goroutines = 4, 250
	p := cache.Policy{Name: "stampede", TTL: time.Hour}
	caches := make([]*cache.Cache[string], instances)
	for i := range caches {
		caches[i] = newCache[string](e, e.newStore(), p, nil)
	}
	var loads atomic.Int64
	load := func(ctx context.Context) (string, error) {
		loads.Add(1)
		return slowLoad(ctx, 200*time.Millisecond, "loaded once")
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	var firstErr atomic.Value
	for _, c := range caches {
		for range goroutines {
			wg.Go(func() {
				<-start
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				v, err := c.GetOrLoad(cctx, "shop", "hot", load)
				if err != nil || v != "loaded once" {
					bad.Add(1)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	require.Zero(t, bad.Load(), "every caller gets the value (first error: %v)", firstErr.Load())
	assert.EqualValues(t, 1, loads.Load(), "%d callers on %d instances: one load", instances*goroutines, instances)
	var sum cache.Stats
	for _, c := range caches {
		st := c.Stats()
		sum.Loads += st.Loads
		sum.Coalesced += st.Coalesced
		sum.Misses += st.Misses
		sum.Hits += st.Hits + st.LocalHits
		sum.Errors += st.Errors
	}
	assert.EqualValues(t, 1, sum.Loads)
	assert.Zero(t, sum.Errors)
	assert.EqualValues(t, instances*goroutines, sum.Misses+sum.Hits, "each call counted once")
	assert.Equal(t, sum.Misses, sum.Loads+sum.Coalesced, "every miss loaded or got another's load")
	t.Logf("%d misses (%d coalesced), %d hits", sum.Misses, sum.Coalesced, sum.Hits)
}

// testCacheStampedeProcesses: the stampede with each instance in its own OS
// process.
func testCacheStampedeProcesses(e *env) {
	t, ctx := e.t, e.ctx
	const procs, goroutines = 4, 250
	results := RunWorkers(t, e.h, procs, "cache-stampede", e.prefix, "shop", "hot", strconv.Itoa(goroutines))
	var loads int
	values := map[string]bool{}
	for i, r := range results {
		f := strings.Fields(r)
		require.Len(t, f, 2, "worker %d result %q", i, r)
		n, err := strconv.Atoi(f[0])
		require.NoError(t, err)
		loads += n
		values[f[1]] = true
	}
	assert.Equal(t, 1, loads, "%d processes × %d goroutines: one load", procs, goroutines)
	assert.Len(t, values, 1, "every process got the same value: %v", values)
	c := newCache[string](e, e.s, cache.Policy{Name: "stampede", TTL: time.Hour}, nil)
	v, err := c.Get(ctx, "shop", "hot")
	require.NoError(t, err)
	assert.True(t, values[v], "the stored value is the one everybody got")
}

// testCacheCrashedLoader: a loader that never finishes holds the lease
// until it expires; then another instance loads, and the stuck load, when
// it finally returns, does not overwrite that value.
func testCacheCrashedLoader(e *env) {
	t, ctx := e.t, e.ctx
	lc := newLayerClock(e)
	lease := 10 * time.Second
	if !lc.fake {
		lease = 500 * time.Millisecond
	}
	p := cache.Policy{Name: "crash", TTL: time.Hour}
	opts := &cache.Options[string]{LeaseTTL: lease, Clock: lc.Now, MaxStale: -1}
	a := newCache(e, e.s, p, opts)
	b := newCache(e, e.newStore(), p, opts)
	started, release := make(chan struct{}), make(chan struct{})
	aDone := make(chan string, 1)
	go func() {
		v, _ := a.GetOrLoad(ctx, "shop", "k", func(context.Context) (string, error) {
			close(started)
			<-release
			return "stuck", nil
		})
		aDone <- v
	}()
	<-started
	bDone := make(chan string, 1)
	var bLoads atomic.Int64
	go func() {
		bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		v, err := b.GetOrLoad(bctx, "shop", "k", func(context.Context) (string, error) {
			bLoads.Add(1)
			return "took over", nil
		})
		if err != nil {
			v = "error: " + err.Error()
		}
		bDone <- v
	}()
	lc.advance(lease + time.Millisecond)
	select {
	case v := <-bDone:
		assert.Equal(t, "took over", v, "another instance loads once the crashed loader's lease expired")
	case <-time.After(60 * time.Second):
		close(release)
		t.Fatal("the waiting instance never took over the expired lease")
	}
	assert.EqualValues(t, 1, bLoads.Load())
	close(release)
	assert.Equal(t, "stuck", <-aDone, "the stuck caller gets its own load")
	v, err := b.Get(ctx, "shop", "k")
	require.NoError(t, err)
	assert.Equal(t, "took over", v, "the load whose lease expired does not store its value")
}

// testCacheNoStaleSet: a load that began before an invalidation, a Set or a
// Delete never stores its older value after it.
func testCacheNoStaleSet(e *env) {
	ctx := e.ctx
	p := cache.Policy{Name: "race", TTL: time.Hour, Tags: []string{"crm"}}
	loader := newCache[string](e, e.s, p, nil)
	writer := newCache[string](e, e.newStore(), p, nil)
	for _, race := range []struct {
		name  string
		write func(key string) error
		want  string // "" for a miss
	}{
		{"InvalidateTenant", func(string) error { return writer.InvalidateTenant(ctx, "shop") }, ""},
		{"InvalidateTag", func(string) error { return writer.InvalidateTag(ctx, "shop", "crm") }, ""},
		{"Set", func(k string) error { return writer.Set(ctx, "shop", k, "newer") }, "newer"},
		{"Delete", func(k string) error { return writer.Delete(ctx, "shop", k) }, ""},
		{"Clear", func(string) error { _, err := writer.Clear(ctx, "shop"); return err }, ""},
	} {
		e.t.Run(race.name, func(t *testing.T) {
			key := "k-" + race.name
			started, release := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				v, err := loader.GetOrLoad(ctx, "shop", key, func(context.Context) (string, error) {
					close(started)
					<-release
					return "older", nil
				})
				if err == nil && v != "older" {
					err = errors.New("the loading caller got " + v)
				}
				done <- err
			}()
			<-started
			require.NoError(t, race.write(key))
			close(release)
			require.NoError(t, <-done)
			fresh := newCache[string](e, e.newStore(), p, nil)
			for _, r := range []*cache.Cache[string]{loader, writer, fresh} {
				v, err := r.Get(ctx, "shop", key)
				if race.want == "" {
					assert.ErrorIs(t, err, cache.ErrNotFound, "after %s, the older load was not stored (got %q)", race.name, v)
				} else {
					require.NoError(t, err)
					assert.Equal(t, race.want, v, "after %s, the older load was not stored", race.name)
				}
			}
		})
	}
}
