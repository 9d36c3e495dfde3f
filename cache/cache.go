package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/internal/besteffort"
	"github.com/karat-go/karat/store"
)

// Errors of the cache. Store failures come back as the store's error classes
// (store.ErrUnavailable, ...), wrapped; test them with errors.Is.
var (
	// ErrNotFound: Get found no fresh entry, or found a cached "not found";
	// a loader returns it (or an error wrapping it) to say the record does
	// not exist, which the policy's NegativeTTL may cache.
	ErrNotFound = errors.New("karat/cache: not found")
	// ErrInvalidTenant: an empty tenant on a tenant-scoped cache, or a
	// non-empty one on a Global cache.
	ErrInvalidTenant = errors.New("karat/cache: invalid tenant")
	// ErrInvalidPolicy: New was given a policy that makes no sense.
	ErrInvalidPolicy = errors.New("karat/cache: invalid policy")
	// ErrLoaderPanic: the loader panicked; the panic is turned into this
	// error so that every caller waiting on the load gets an answer.
	ErrLoaderPanic = errors.New("karat/cache: loader panicked")
)

// Options configures a Cache. nil and the zero value are valid.
type Options[T any] struct {
	// Namespace is put before every key; the zero value means
	// karat:cache. Every cache of an application shares it, so that
	// InvalidateTenant and Clear reach all of a tenant's entries.
	Namespace store.Namespace
	// Codec encodes values; nil means JSON.
	Codec Codec[T]
	// MaxStale bounds how old a value another process has replaced may
	// still be served (from the store's client-side cache and the local
	// decoded values): 0 means 1 s; < 0 turns both off, so every read asks
	// the store.
	MaxStale time.Duration
	// LocalEntries caps the decoded values kept in process (each for at
	// most MaxStale/2): 0 means 10,000; < 0 keeps none.
	LocalEntries int
	// LeaseTTL is how long a loader holds a key's lease before another
	// process may take over (a crashed loader's lease simply expires): 0
	// means 10 s. Make it longer than your slowest load.
	LeaseTTL time.Duration
	// LoadTimeout bounds a load shared by concurrent callers, which runs
	// apart from any one caller's context (each caller still returns at its
	// own deadline): 0 means 30 s.
	LoadTimeout time.Duration
	// StoreTimeout, when > 0, bounds each store call GetOrLoad and Get make
	// (the lookup, each try for the lease, storing the loaded value, giving
	// the lease back), so that a FallbackToLoader policy has time left to
	// load before the caller's deadline when the store stalls, and a value
	// loaded just before a stall is answered without waiting on storing it.
	// 0 relies on the caller's context (and LoadTimeout) alone.
	StoreTimeout time.Duration
	// Clock is the cache's time (freshness, stale windows, early refresh);
	// nil means time.Now. Key expiry is the store's.
	Clock func() time.Time
}

// Cache is a typed, tenant-scoped cache over a store.Store, for one Policy.
// It is safe for concurrent use.
type Cache[T any] struct {
	s            store.Store
	cr           store.CachedReader
	crs          store.CachedStringReader // cr's string form: generations are read without a copy
	p            Policy
	tags         []string // Name, then Policy.Tags
	ns           store.Namespace
	codec        Codec[T]
	now          func() time.Time
	storeStale   time.Duration // maxStale given to GetCached
	leaseTTL     time.Duration
	loadTimeout  time.Duration
	storeTimeout time.Duration
	local        *local[T]
	flights      flightGroup
	refreshes    flightGroup

	localHits, hits, staleHits, misses, errs, loads, coalesced, refreshed atomic.Uint64
}

// New returns a cache for values of type T under policy p over s.
func New[T any](s store.Store, p Policy, opts *Options[T]) (*Cache[T], error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidPolicy)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	var o Options[T]
	if opts != nil {
		o = *opts
	}
	if o.Namespace.IsZero() {
		o.Namespace = store.MustNamespace("karat", "cache")
	}
	if o.Codec == nil {
		o.Codec = JSON[T]()
	}
	if o.MaxStale == 0 {
		o.MaxStale = time.Second
	}
	if o.LocalEntries == 0 {
		o.LocalEntries = 10_000
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	p.Tags = slices.Clone(p.Tags)
	c := &Cache[T]{
		s: s, p: p, ns: o.Namespace, codec: o.Codec, now: o.Clock,
		tags:     append([]string{p.Name}, p.Tags...),
		leaseTTL: o.LeaseTTL, loadTimeout: o.LoadTimeout, storeTimeout: o.StoreTimeout,
	}
	if o.MaxStale > 0 {
		half := o.MaxStale / 2
		if cr, ok := store.Capability[store.CachedReader](s); ok {
			c.cr = cr
			c.crs = store.CachedStrings(cr)
			c.storeStale = half
		}
		if o.LocalEntries > 0 {
			// The store read is at most half of MaxStale old (or fresh, without
			// a CachedReader), and the local copy lives the other half.
			c.local = newLocal[T](o.LocalEntries, half)
		}
	}
	return c, nil
}

// Policy returns the cache's policy.
func (c *Cache[T]) Policy() Policy { return c.p }

// keys are the store keys of one (tenant, key): the entry, its lease, and
// the generation keys the entry is checked against (the scope's, then one
// per tag), all under one hash tag.
type keys struct {
	tenant, key  string
	entry, lease string
	gens         []string
}

// scopeTag is the hash tag of a tenant's keys ("t" and the tenant), or of
// the global scope ("g"): distinct for any tenant id.
func (c *Cache[T]) scopeTag(tenant string) (string, error) {
	if c.p.Global {
		if tenant != "" {
			return "", fmt.Errorf("%w: policy %s is global: pass tenant \"\"", ErrInvalidTenant, c.p.Name)
		}
		return "g", nil
	}
	if tenant == "" {
		return "", fmt.Errorf("%w: empty tenant for policy %s", ErrInvalidTenant, c.p.Name)
	}
	return "t:" + tenant, nil
}

func (c *Cache[T]) genKeys(tag string) ([]string, error) {
	gens := make([]string, 0, 1+len(c.tags))
	g, err := c.ns.TaggedKey(tag, "g")
	if err != nil {
		return nil, err
	}
	gens = append(gens, g)
	for _, t := range c.tags {
		g, err := c.ns.TaggedKey(tag, "t", t)
		if err != nil {
			return nil, err
		}
		gens = append(gens, g)
	}
	return gens, nil
}

func (c *Cache[T]) keysFor(tenant, key string) (keys, error) {
	tag, err := c.scopeTag(tenant)
	if err != nil {
		return keys{}, err
	}
	k := keys{tenant: tenant, key: key}
	if k.entry, k.lease, err = c.entryKeys(tag, key); err != nil {
		return keys{}, err
	}
	if k.gens, err = c.genKeys(tag); err != nil {
		return keys{}, err
	}
	return k, nil
}

// entryKeys are the entry and lease keys of key in the scope tag.
func (c *Cache[T]) entryKeys(tag, key string) (entry, lease string, err error) {
	if entry, err = c.ns.TaggedKey(tag, "e", c.p.Name, key); err != nil {
		return "", "", err
	}
	if lease, err = c.ns.TaggedKey(tag, "l", c.p.Name, key); err != nil {
		return "", "", err
	}
	return entry, lease, nil
}

// Key returns the store key that holds the entry of key in tenant: for
// tests and for looking at the store by hand.
func (c *Cache[T]) Key(tenant, key string) (string, error) {
	k, err := c.keysFor(tenant, key)
	return k.entry, err
}

func (c *Cache[T]) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.storeTimeout > 0 {
		return context.WithTimeout(ctx, c.storeTimeout)
	}
	return ctx, func() {}
}

func parseGen(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	return parseGenString(string(b))
}

// parseGenString parses a generation read as a string.
func parseGenString(s string) (int64, error) {
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: generation %q", store.ErrNotInteger, s)
	}
	return g, nil
}

// readGens reads the generations from the server (never a client-side
// cache): a load or a Set records them.
func (c *Cache[T]) readGens(ctx context.Context, k keys) ([]int64, error) {
	vals, err := c.s.MGet(ctx, k.gens...)
	if err != nil {
		return nil, err
	}
	gens := make([]int64, len(vals))
	for i, v := range vals {
		if gens[i], err = parseGen(v); err != nil {
			return nil, err
		}
	}
	return gens, nil
}

// lookup reads the entry and the current generations. cached allows the
// client-side cache. found is false for a missing entry, a foreign one, or
// one written under an older generation.
func (c *Cache[T]) lookup(ctx context.Context, k keys, cached bool) (e entry, found bool, err error) {
	ctx, cancel := c.storeCtx(ctx)
	defer cancel()
	var raw []byte
	var gens []int64
	if cached && c.cr != nil {
		gens = make([]int64, len(k.gens))
		for i, g := range k.gens {
			v, err := c.crs.GetCachedString(ctx, g, c.storeStale)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return entry{}, false, err
			}
			if gens[i], err = parseGenString(v); err != nil {
				return entry{}, false, err
			}
		}
		raw, err = c.cr.GetCached(ctx, k.entry, c.storeStale)
		if errors.Is(err, store.ErrNotFound) {
			return entry{}, false, nil
		}
		if err != nil {
			return entry{}, false, err
		}
	} else {
		vals, err := c.s.MGet(ctx, append(slices.Clip(k.gens), k.entry)...)
		if err != nil {
			return entry{}, false, err
		}
		gens = make([]int64, len(k.gens))
		for i := range k.gens {
			if gens[i], err = parseGen(vals[i]); err != nil {
				return entry{}, false, err
			}
		}
		raw = vals[len(k.gens)]
		if raw == nil {
			return entry{}, false, nil
		}
	}
	e, ok := decodeEntry(raw)
	if !ok || !e.current(gens) {
		return entry{}, false, nil
	}
	return e, true, nil
}

// state of an entry at now: fresh, stale but servable, or too old.
type state int

const (
	expired state = iota
	stale
	fresh
)

func (c *Cache[T]) stateOf(freshUntil int64, now time.Time) state {
	us := now.UnixMicro()
	switch {
	case us < freshUntil:
		return fresh
	case us < freshUntil+c.p.StaleWhileRevalidate.Microseconds():
		return stale
	}
	return expired
}

// earlyRefresh is XFetch's test.
func (c *Cache[T]) earlyRefresh(freshUntil, delta int64, now time.Time) bool {
	if c.p.EarlyRefresh <= 0 || delta <= 0 {
		return false
	}
	gap := -float64(delta) * c.p.EarlyRefresh * math.Log(1-mrand.Float64())
	return float64(now.UnixMicro())+gap >= float64(freshUntil)
}

func (c *Cache[T]) toLocal(e entry) (*localEntry[T], error) {
	le := &localEntry[T]{negative: e.negative, freshUntil: e.freshUntil, delta: e.delta}
	if !e.negative {
		v, err := c.codec.Decode(e.value)
		if err != nil {
			return nil, fmt.Errorf("karat/cache: decoding %s entry: %w", c.p.Name, err)
		}
		le.val = v
	}
	return le, nil
}

func result[T any](le *localEntry[T]) (T, error) {
	if le.negative {
		var zero T
		return zero, ErrNotFound
	}
	return le.val, nil
}

// Get returns the fresh value of key in tenant, or ErrNotFound when there is
// none (or when a "not found" is cached). A store failure is returned as is
// and counted in Stats.Errors, not as a miss.
func (c *Cache[T]) Get(ctx context.Context, tenant, key string) (T, error) {
	var zero T
	now := c.now()
	// A local entry exists only for a tenant and key that were valid.
	if le := c.local.get(tenant, key); le != nil && c.stateOf(le.freshUntil, now) == fresh {
		c.localHits.Add(1)
		return result(le)
	}
	k, err := c.keysFor(tenant, key)
	if err != nil {
		return zero, err
	}
	seq := c.local.begin()
	e, found, err := c.lookup(ctx, k, true)
	if err != nil {
		c.errs.Add(1)
		return zero, err
	}
	if !found || c.stateOf(e.freshUntil, now) != fresh {
		c.misses.Add(1)
		return zero, ErrNotFound
	}
	le, err := c.toLocal(e)
	if err != nil {
		c.errs.Add(1)
		return zero, err
	}
	c.hits.Add(1)
	c.local.install(tenant, key, le, seq)
	return result(le)
}

// GetMany returns the fresh values of keys in tenant that are cached, by
// key; a key that misses (or whose "not found" is cached) is absent. It
// asks the store with one MGet per 500 keys (a tenant's keys share a slot),
// never through the client-side cache. Each key counts once in Stats as a
// local hit, a hit or a miss; a store failure counts one error and is
// returned.
func (c *Cache[T]) GetMany(ctx context.Context, tenant string, keys []string) (map[string]T, error) {
	tag, err := c.scopeTag(tenant)
	if err != nil {
		return nil, err
	}
	genKeys, err := c.genKeys(tag)
	if err != nil {
		return nil, err
	}
	out := make(map[string]T, len(keys))
	now := c.now()
	var pending []string
	for _, key := range keys {
		if le := c.local.get(tenant, key); le != nil && c.stateOf(le.freshUntil, now) == fresh {
			c.localHits.Add(1)
			if !le.negative {
				out[key] = le.val
			}
			continue
		}
		pending = append(pending, key)
	}
	seq := c.local.begin()
	const batch = 500
	for len(pending) > 0 {
		n := min(batch, len(pending))
		part := pending[:n]
		pending = pending[n:]
		mkeys := append(slices.Clip(genKeys), make([]string, 0, n)...)
		for _, key := range part {
			entry, _, err := c.entryKeys(tag, key)
			if err != nil {
				return nil, err
			}
			mkeys = append(mkeys, entry)
		}
		sctx, cancel := c.storeCtx(ctx)
		vals, err := c.s.MGet(sctx, mkeys...)
		cancel()
		if err != nil {
			c.errs.Add(1)
			return nil, err
		}
		gens := make([]int64, len(genKeys))
		for i := range genKeys {
			if gens[i], err = parseGen(vals[i]); err != nil {
				c.errs.Add(1)
				return nil, err
			}
		}
		for i, key := range part {
			raw := vals[len(genKeys)+i]
			e, ok := decodeEntry(raw)
			if raw == nil || !ok || !e.current(gens) || c.stateOf(e.freshUntil, now) != fresh {
				c.misses.Add(1)
				continue
			}
			le, err := c.toLocal(e)
			if err != nil {
				c.errs.Add(1)
				return nil, err
			}
			c.hits.Add(1)
			c.local.install(tenant, key, le, seq)
			if !le.negative {
				out[key] = le.val
			}
		}
	}
	return out, nil
}

// Loader loads a value that is not cached. It returns ErrNotFound (or an
// error wrapping it) for a record that does not exist.
type Loader[T any] func(ctx context.Context) (T, error)

// GetOrLoad returns the value of key in tenant, loading it with load when
// it is not cached. Concurrent misses for one key, in this process and in
// every other process over the same store, call a loader once: the others
// wait for its value (polling the store with backoff), or get the stale
// value at once while it refreshes when the policy has a stale window. A
// loader's error is returned and not cached; ErrNotFound is cached for the
// policy's NegativeTTL. GetOrLoad returns by ctx's deadline whatever the
// store or the loader do; a shared load goes on (bounded by LoadTimeout)
// for the others.
func (c *Cache[T]) GetOrLoad(ctx context.Context, tenant, key string, load Loader[T]) (T, error) {
	var zero T
	if load == nil {
		return zero, fmt.Errorf("%w: nil loader", ErrInvalidPolicy)
	}
	now := c.now()
	if le := c.local.get(tenant, key); le != nil && c.stateOf(le.freshUntil, now) == fresh {
		c.localHits.Add(1)
		if c.earlyRefresh(le.freshUntil, le.delta, now) {
			if k, err := c.keysFor(tenant, key); err == nil {
				c.refresh(ctx, k, load)
			}
		}
		return result(le)
	}
	k, err := c.keysFor(tenant, key)
	if err != nil {
		return zero, err
	}
	seq := c.local.begin()
	e, found, err := c.lookup(ctx, k, true)
	if err != nil {
		c.errs.Add(1)
		return c.fallback(ctx, k, err, load)
	}
	if found {
		switch st := c.stateOf(e.freshUntil, now); st {
		case fresh, stale:
			le, err := c.toLocal(e)
			if err != nil {
				c.errs.Add(1)
				return zero, err
			}
			if st == stale {
				c.staleHits.Add(1)
				c.refresh(ctx, k, load)
				return result(le)
			}
			c.hits.Add(1)
			c.local.install(tenant, key, le, seq)
			if c.earlyRefresh(e.freshUntil, e.delta, now) {
				c.refresh(ctx, k, load)
			}
			return result(le)
		}
	}
	c.misses.Add(1)
	return c.shared(ctx, k.entry, func(lctx context.Context) (any, bool, error) {
		return c.loadShared(lctx, k, load, false)
	})
}

// shared runs work once for concurrent callers of one flight key, on a
// context of its own (bounded by LoadTimeout), and answers each caller by
// its own deadline. A caller answered by another's load counts as
// coalesced.
func (c *Cache[T]) shared(ctx context.Context, key string, work func(context.Context) (any, bool, error)) (T, error) {
	var zero T
	f, leader, err := c.flights.do(ctx, key, func() (any, bool, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
		defer cancel()
		return work(lctx)
	})
	if err != nil {
		return zero, err
	}
	if f.err != nil {
		return zero, f.err
	}
	if !(leader && f.loaded) {
		c.coalesced.Add(1)
	}
	return result(f.val.(*localEntry[T]))
}

// fallback answers a GetOrLoad whose lookup failed with err: the error, or
// with FallbackToLoader the loader's answer (not stored), one load for the
// concurrent callers of a key in this process.
func (c *Cache[T]) fallback(ctx context.Context, k keys, err error, load Loader[T]) (T, error) {
	if !c.p.FallbackToLoader || ctx.Err() != nil {
		var zero T
		return zero, err
	}
	return c.shared(ctx, "fallback:"+k.entry, func(lctx context.Context) (any, bool, error) {
		return c.fallbackShared(lctx, err, load)
	})
}

func callLoader[T any](ctx context.Context, load Loader[T]) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrLoaderPanic, r)
		}
	}()
	return load(ctx)
}

// refresh starts a background refresh of k unless one is running in this
// process; it loads only if it gets the lease (another process may be
// refreshing already).
func (c *Cache[T]) refresh(ctx context.Context, k keys, load Loader[T]) {
	c.refreshes.try(k.entry, func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
		defer cancel()
		if _, loaded, _ := c.loadShared(lctx, k, load, true); loaded {
			c.refreshed.Add(1)
		}
	})
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Backoff of a caller waiting for another's load.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// loadShared is the work of one load: take the lease and load, or wait for
// whoever holds it. once gives up at once when the lease is taken (a
// refresh). It returns a *localEntry[T], and whether it called the loader.
//
// Each attempt is one AcquireScript call, which reads the entry and the
// generations and tries the lease in one step: a caller that wins the lease
// just after another's load stored its value sees that value instead of
// loading again.
func (c *Cache[T]) loadShared(ctx context.Context, k keys, load Loader[T], once bool) (any, bool, error) {
	token := newToken()
	wait := pollMin
	for {
		won, raw, gens, err := c.acquire(ctx, k, token)
		if err != nil {
			c.errs.Add(1)
			if once {
				return nil, false, err
			}
			return c.fallbackShared(ctx, err, load)
		}
		if !once && raw != nil {
			if e, ok := decodeEntry(raw); ok && e.current(gens) && c.stateOf(e.freshUntil, c.now()) != expired {
				if won {
					c.release(ctx, k, token)
				}
				le, err := c.toLocal(e)
				if err != nil {
					return nil, false, err
				}
				return le, false, nil
			}
		}
		if won {
			return c.loadLeased(ctx, k, token, gens, load)
		}
		if once {
			return nil, false, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, pollMax)
	}
}

// acquire runs AcquireScript: whether the lease is now token's, the entry
// (nil when missing) and the current generations.
func (c *Cache[T]) acquire(ctx context.Context, k keys, token string) (won bool, raw []byte, gens []int64, err error) {
	skeys := append([]string{k.entry, k.lease}, k.gens...)
	ctx, cancel := c.storeCtx(ctx)
	defer cancel()
	v, err := c.s.Eval(ctx, AcquireScript, skeys, token, msArg(c.leaseTTL))
	if err != nil {
		return false, nil, nil, err
	}
	if v.Kind != store.KindArray || len(v.Array) != 2+len(k.gens) {
		return false, nil, nil, fmt.Errorf("karat/cache: %s returned %s", AcquireScript.Name(), v)
	}
	won = v.Array[0].Kind == store.KindInt && v.Array[0].Int == 1
	if v.Array[1].Kind == store.KindBytes {
		raw = v.Array[1].Bytes
	}
	gens = make([]int64, len(k.gens))
	for i := range gens {
		if gens[i], err = parseGen(v.Array[2+i].Bytes); err != nil {
			return false, nil, nil, err
		}
	}
	return won, raw, gens, nil
}

// release gives the lease back: within StoreTimeout (when set) and the
// caller's deadline, or in the background when those pass (see
// besteffort.Do), so that a stalled store holds no caller; a lease not
// given back expires with LeaseTTL.
func (c *Cache[T]) release(ctx context.Context, k keys, token string) {
	ctx, cancel := c.storeCtx(ctx)
	defer cancel()
	besteffort.Do(ctx, func(ctx context.Context) error {
		_, err := c.s.Eval(ctx, ReleaseScript, []string{k.lease}, token)
		return err
	})
}

// fallbackKey marks the context of a loader called by fallbackShared.
type fallbackKey struct{}

// IsFallback reports whether a Loader was called with ctx because the store
// failed and the policy has FallbackToLoader: its value is returned to the
// callers but not stored. A caller can say so (an HTTP header, a metric).
func IsFallback(ctx context.Context) bool {
	v, _ := ctx.Value(fallbackKey{}).(bool)
	return v
}

func (c *Cache[T]) fallbackShared(ctx context.Context, err error, load Loader[T]) (any, bool, error) {
	if !c.p.FallbackToLoader {
		return nil, false, err
	}
	c.loads.Add(1)
	v, lerr := callLoader(context.WithValue(ctx, fallbackKey{}, true), load)
	if errors.Is(lerr, ErrNotFound) {
		return &localEntry[T]{negative: true}, true, nil
	}
	if lerr != nil {
		return nil, true, lerr
	}
	return &localEntry[T]{val: v}, true, nil
}

// loadLeased loads under the lease token and stores the value with
// FillScript, which refuses it if the lease or a generation moved meanwhile.
func (c *Cache[T]) loadLeased(ctx context.Context, k keys, token string, gens []int64, load Loader[T]) (any, bool, error) {
	release := func() { c.release(ctx, k, token) }
	start := c.now()
	c.loads.Add(1)
	v, lerr := callLoader(ctx, load)
	delta := c.now().Sub(start)
	var raw []byte
	var ttl time.Duration
	negative := errors.Is(lerr, ErrNotFound)
	switch {
	case negative && c.p.NegativeTTL > 0:
		ttl = c.p.NegativeTTL
	case lerr != nil:
		release()
		return nil, true, lerr
	default:
		var err error
		if raw, err = c.codec.Encode(v); err != nil {
			release()
			return nil, true, fmt.Errorf("karat/cache: encoding %s value: %w", c.p.Name, err)
		}
		ttl = c.ttl()
	}
	fillTTL := ttl
	if !negative {
		fillTTL += c.p.StaleWhileRevalidate
	}
	ent := encodeEntry(negative, c.now().Add(ttl), delta, gens, raw)
	skeys := append([]string{k.entry, k.lease}, k.gens...)
	args := make([]string, 0, 3+len(gens))
	args = append(args, token, string(ent), strconv.FormatInt(fillTTL.Milliseconds(), 10))
	for _, g := range gens {
		args = append(args, strconv.FormatInt(g, 10))
	}
	fctx, cancel := c.storeCtx(ctx)
	_, err := c.s.Eval(fctx, FillScript, skeys, args...)
	cancel()
	if err != nil {
		// The value is good; only storing it failed. Count, and answer.
		c.errs.Add(1)
	}
	le := &localEntry[T]{val: v, negative: negative, freshUntil: c.now().Add(ttl).UnixMicro(), delta: delta.Microseconds()}
	return le, true, nil
}

// ttl is the policy's TTL less a random jitter, at least a millisecond and
// a whole number of them (what the store keeps).
func (c *Cache[T]) ttl() time.Duration {
	ttl := c.p.TTL
	if c.p.Jitter > 0 {
		ttl -= mrand.N(c.p.Jitter + 1)
	}
	return max(ttl.Truncate(time.Millisecond), time.Millisecond)
}

func msArg(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// Set stores v under key in tenant, replacing what is there, and stops any
// load of the key in flight from storing its value afterwards.
func (c *Cache[T]) Set(ctx context.Context, tenant, key string, v T) error {
	k, err := c.keysFor(tenant, key)
	if err != nil {
		return err
	}
	raw, err := c.codec.Encode(v)
	if err != nil {
		return fmt.Errorf("karat/cache: encoding %s value: %w", c.p.Name, err)
	}
	gens, err := c.readGens(ctx, k)
	if err != nil {
		return err
	}
	ttl := c.ttl()
	ent := encodeEntry(false, c.now().Add(ttl), 0, gens, raw)
	_, err = c.s.Eval(ctx, SetScript, []string{k.entry, k.lease}, string(ent), msArg(ttl+c.p.StaleWhileRevalidate))
	c.local.dropKey(tenant, key)
	return err
}

// SetMany stores every item of one tenant with one generation read and one
// script per 100 items (a tenant's keys share a slot): for warming a cache.
func (c *Cache[T]) SetMany(ctx context.Context, tenant string, items map[string]T) error {
	tag, err := c.scopeTag(tenant)
	if err != nil || len(items) == 0 {
		return err
	}
	genKeys, err := c.genKeys(tag)
	if err != nil {
		return err
	}
	gens, err := c.readGens(ctx, keys{gens: genKeys})
	if err != nil {
		return err
	}
	// 100 entries a script: the memory driver checks each key a script
	// touches against its declared keys, which costs O(keys) per access.
	const batch = 100
	entries := make([]string, 0, batch)
	leases := make([]string, 0, batch)
	args := make([]string, 0, 2*batch)
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		_, err := c.s.Eval(ctx, SetManyScript, append(entries, leases...), args...)
		entries, leases, args = entries[:0], leases[:0], args[:0]
		return err
	}
	for key, v := range items {
		entry, lease, err := c.entryKeys(tag, key)
		if err != nil {
			return err
		}
		raw, err := c.codec.Encode(v)
		if err != nil {
			return fmt.Errorf("karat/cache: encoding %s value: %w", c.p.Name, err)
		}
		ttl := c.ttl()
		entries = append(entries, entry)
		leases = append(leases, lease)
		args = append(args, string(encodeEntry(false, c.now().Add(ttl), 0, gens, raw)), msArg(ttl+c.p.StaleWhileRevalidate))
		if len(entries) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	err = flush()
	c.local.dropTenant(tenant)
	return err
}

// Delete removes key from tenant (and its lease, so a load in flight does
// not store its value afterwards).
func (c *Cache[T]) Delete(ctx context.Context, tenant, key string) error {
	k, err := c.keysFor(tenant, key)
	if err != nil {
		return err
	}
	_, err = c.s.Delete(ctx, k.entry, k.lease)
	c.local.dropKey(tenant, key)
	return err
}

// InvalidateTenant makes every entry of tenant miss, in every policy under
// the namespace, with one store call whatever the number of entries: it
// bumps the tenant's generation, and entries written under an older one are
// never served again (they expire by their TTL). Generation keys never
// expire.
func (c *Cache[T]) InvalidateTenant(ctx context.Context, tenant string) error {
	tag, err := c.scopeTag(tenant)
	if err != nil {
		return err
	}
	g, err := c.ns.TaggedKey(tag, "g")
	if err != nil {
		return err
	}
	_, err = c.s.IncrBy(ctx, g, 1, 0)
	c.local.dropTenant(tenant)
	return err
}

// InvalidateTag makes every entry of tenant that carries tag miss, in every
// policy under the namespace (a policy's Name is a tag of all its entries),
// with one store call.
func (c *Cache[T]) InvalidateTag(ctx context.Context, tenant, tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: empty tag", store.ErrInvalidKey)
	}
	stag, err := c.scopeTag(tenant)
	if err != nil {
		return err
	}
	g, err := c.ns.TaggedKey(stag, "t", tag)
	if err != nil {
		return err
	}
	_, err = c.s.IncrBy(ctx, g, 1, 0)
	if slices.Contains(c.tags, tag) {
		c.local.dropTenant(tenant)
	}
	return err
}

// Incr adds delta to the counter key of tenant and returns its new value;
// a new counter expires after the policy's TTL (no jitter). Counters are not
// entries: invalidations leave them, Clear deletes them.
func (c *Cache[T]) Incr(ctx context.Context, tenant, key string, delta int64) (int64, error) {
	tag, err := c.scopeTag(tenant)
	if err != nil {
		return 0, err
	}
	ck, err := c.ns.TaggedKey(tag, "c", c.p.Name, key)
	if err != nil {
		return 0, err
	}
	return c.s.IncrBy(ctx, ck, delta, c.p.TTL)
}
