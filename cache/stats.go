package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/karat-go/karat/store"
)

// Stats are a cache's counters since New. Every Get and GetOrLoad lookup
// counts once in exactly one of LocalHits, Hits, StaleHits, Misses or
// Errors (an argument refused before any store call counts nowhere; GetMany
// counts each key). A miss of GetOrLoad then either ran the loader (Loads),
// got another caller's value (Coalesced), or failed; a store failure met
// while loading (the lease, the write after the load) counts in Errors too,
// once per shared load.
type Stats struct {
	// LocalHits were answered from the in-process decoded values.
	LocalHits uint64
	// Hits were answered by the store (on a store with client-side caching,
	// mostly from that cache, without a round trip).
	Hits uint64
	// StaleHits returned a stale value within the policy's
	// StaleWhileRevalidate window while a refresh ran.
	StaleHits uint64
	// Misses found no usable entry.
	Misses uint64
	// Errors are store failures met on the way (a lookup, a lease, the
	// write after a load); an error is not a miss.
	Errors uint64
	// Loads are calls of a loader by this cache, refreshes and fallbacks
	// included.
	Loads uint64
	// Coalesced are misses answered by a load another caller ran, in this
	// process or another.
	Coalesced uint64
	// Refreshes are background refreshes (stale or early) that loaded.
	Refreshes uint64
}

// HitRate is the share of lookups answered from the cache (local, store and
// stale hits) among those that were answered (errors excluded); 0 before any.
func (s Stats) HitRate() float64 {
	hits := s.LocalHits + s.Hits + s.StaleHits
	if hits+s.Misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+s.Misses)
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[T]) Stats() Stats {
	st := Stats{
		LocalHits: c.localHits.Load(), Hits: c.hits.Load(), StaleHits: c.staleHits.Load(),
		Misses: c.misses.Load(), Errors: c.errs.Load(), Loads: c.loads.Load(),
		Coalesced: c.coalesced.Load(), Refreshes: c.refreshed.Load(),
	}
	return st
}

// StoreUsage returns the store's key count and memory ("12 keys, 1.18M
// memory") when the store can tell (store.UsageReporter: every karat
// driver); otherwise an error wrapping errors.ErrUnsupported. For Redis it
// is the whole database, not only this cache's keys.
func (c *Cache[T]) StoreUsage(ctx context.Context) (store.Usage, error) {
	ur, ok := store.Capability[store.UsageReporter](c.s)
	if !ok {
		return store.Usage{}, fmt.Errorf("karat/cache: the store does not report its usage: %w", errors.ErrUnsupported)
	}
	return ur.Usage(ctx)
}
