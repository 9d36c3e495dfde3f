// Package cache is karat's typed, tenant-isolated cache-aside layer over a
// store.Store: one load per key across every process, O(1) invalidation of
// a tenant or a tag, no stale sets, and hits served without a round trip when
// the store has a client-side cache.
//
// Start with New and a Policy (or one of the jeweller presets: KPI,
// Customer, Product, Invoice, Permissions, GoldPrice), then GetOrLoad:
//
//	customers, err := cache.New[Customer](s, cache.Customer, nil)
//	c, err := customers.GetOrLoad(ctx, shopID, customerID, func(ctx context.Context) (Customer, error) {
//		return db.Customer(ctx, shopID, customerID) // cache.ErrNotFound if there is none
//	})
//
// # Keys
//
// Every key is built with store.Namespace.TaggedKey under Options.Namespace
// (default karat:cache), whose hash tag is the scope: "t:" and the tenant id
// for a tenant-scoped policy, "g" for a Global one. A tenant id is encoded,
// never trusted, so no id (with '*', '{', ':', newlines, invalid UTF-8, up
// to store.MaxPartLen bytes less the scope's two; longer is
// store.ErrInvalidKey, never truncated) reaches another tenant's keys. Within a scope:
//
//	ns:{scope}:e:POLICY:KEY   an entry
//	ns:{scope}:l:POLICY:KEY   the lease of the load of that entry
//	ns:{scope}:c:POLICY:KEY   a counter (Incr)
//	ns:{scope}:g              the scope's generation
//	ns:{scope}:t:TAG          a tag's generation in the scope
//
// Tagging by tenant puts a tenant's entries, leases and generations in one
// cluster slot, so the write after a load can check them in one script. The
// price: one tenant's cache lives on one cluster master.
//
// # Invalidation
//
// An entry records the generations (scope, then each tag) it was written
// under; a read rejects an entry older than the current generations.
// InvalidateTenant and InvalidateTag are one IncrBy each, whatever the number
// of entries; old entries are simply never served again and expire by
// their TTL. Generation keys never expire, and Clear never deletes them: a
// reset generation would bring old entries back. Clear(tenant) also deletes
// the tenant's keys through store.Scanner, and InvalidatePattern deletes a
// policy's entries whose key matches a glob, in every tenant, on every
// master: both are maintenance tools that scan.
//
// # Loads
//
// A miss in GetOrLoad joins the load of that key in this process (an
// in-process flight group; every caller still returns at its own deadline)
// and runs AcquireScript, which reads the entry and the generations and
// sets the key's lease if it is free (SET NX, TTL Options.LeaseTTL, so a
// crashed loader's lease expires), all in one step: a caller that gets the
// lease just after another's load finished sees that value instead of
// loading twice. The lease holder calls the loader and stores the value with
// FillScript, which writes only if the lease is still its own and no
// generation moved since the acquire: a Set, Delete, Clear or invalidation
// made while the load ran wins (memcache's leases, NSDI '13). Everyone else
// repeats the acquire with backoff (2 ms doubling to 50 ms) until the value
// appears, the lease is theirs, or their context ends. A miss costs three
// round trips: the lookup, the acquire, the fill. A loader's error is not
// cached; ErrNotFound is, for NegativeTTL. With StaleWhileRevalidate a stale
// entry is returned at once and refreshed in the background by whoever gets
// the lease; with EarlyRefresh a fresh entry may be refreshed before it
// expires (XFetch).
//
// # Coherence and speed
//
// When the store has store.CachedReader, a lookup reads the generations and
// the entry with GetCached, so a hot hit costs no round trip; decoded values
// are also kept in process (Options.LocalEntries). Both halves share the
// Options.MaxStale bound (default 1 s): GetCached is given MaxStale/2 and a
// local value lives MaxStale/2, so another process's change is seen within
// MaxStale. A Cache reads back its own writes and invalidations at once
// (the store's read-your-writes, and the local values it drops); another
// Cache value in the same process is another reader, bounded by MaxStale.
// Without a CachedReader a lookup is one MGet of the generations and the
// entry.
//
// # Choices where the issue was silent
//
//   - Jitter only shortens a TTL (by up to Policy.Jitter): an entry never
//     outlives its policy.
//   - Get returns only fresh entries; stale ones are for GetOrLoad, which can
//     refresh them.
//   - A cached "not found" and a miss are both ErrNotFound from Get; Stats
//     tell them apart (a cached not-found is a hit).
//   - A shared load runs on its own context (the first caller's values,
//     without its cancellation, bounded by Options.LoadTimeout), so that one
//     caller giving up does not fail the others.
//   - On a store failure GetOrLoad returns the error, or with
//     Policy.FallbackToLoader calls the loader and returns its value without
//     storing it; either way Stats.Errors counts it. Options.StoreTimeout
//     bounds each store call so that time is left to load. The loader can
//     tell it was called this way (IsFallback on its context).
//   - The store's key count and memory (StoreUsage) come from a new optional
//     store capability, store.UsageReporter (DBSIZE and INFO memory on
//     Redis, summed over a cluster's masters), not from Stats, which never
//     makes a round trip.
//   - Counters (Incr) take the policy's TTL when created and are not
//     generational: invalidations leave them, Clear deletes them.
//   - A Set records the generations it read just before writing: a Set
//     that races an invalidation of its tenant or tag may be invalidated by
//     it (never the reverse: an invalidation is never undone).
//   - SetMany and GetMany batch one tenant's keys (100 a script, 500 an
//     MGet) for warming and for dashboards; GetMany reads the server, not
//     the client-side cache.
//   - Read-your-writes is per Cache value: another Cache in the same process
//     (another policy) sees this one's invalidations within MaxStale, like
//     another process.
//   - The in-process coalescing is a small flight group of our own rather
//     than golang.org/x/sync/singleflight, so that each caller can leave at
//     its own deadline while the shared load goes on; no new dependency.
package cache
