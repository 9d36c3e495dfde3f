package cache

import (
	"fmt"
	"time"
)

// Policy is a named set of caching rules. Its Name is part of every key the
// cache writes, and an implicit tag of every entry (see Cache.InvalidateTag),
// so two caches with the same Name over the same Namespace share entries and
// must agree on the value type.
type Policy struct {
	// Name names the kind of entry ("kpi", "customer"). Required.
	Name string
	// TTL is how long an entry stays fresh. Required, > 0.
	TTL time.Duration
	// Jitter, when > 0, shortens each entry's TTL by a random amount in
	// [0, Jitter], so entries written together do not all expire together.
	// An entry never lives longer than TTL. Must be < TTL.
	Jitter time.Duration
	// NegativeTTL, when > 0, caches a loader's ErrNotFound for that long, so
	// a missing record does not reach the loader on every request. 0 caches
	// nothing for a not-found.
	NegativeTTL time.Duration
	// StaleWhileRevalidate, when > 0, keeps an entry for that long after it
	// stops being fresh: GetOrLoad returns the stale value at once and
	// refreshes it in the background (one refresh across every process).
	StaleWhileRevalidate time.Duration
	// EarlyRefresh, when > 0, refreshes a fresh entry before it expires with
	// probability rising as expiry nears (XFetch, Vattani et al., VLDB 2015):
	// a hit refreshes when now - delta*EarlyRefresh*ln(rand) >= expiry, delta
	// being how long the last load took. 1 is the paper's default; larger
	// refreshes earlier.
	EarlyRefresh float64
	// Global makes the cache shared by every tenant: calls pass tenant ""
	// (anything else is ErrInvalidTenant). The gold price is global.
	Global bool
	// Tags are extra tags every entry of this policy carries, besides Name.
	Tags []string
	// FallbackToLoader makes GetOrLoad call the loader itself when the store
	// fails (the failure is still counted in Stats.Errors and the value is
	// not stored). Without it GetOrLoad returns the store's error.
	FallbackToLoader bool
}

func (p Policy) validate() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidPolicy)
	case p.TTL <= 0:
		return fmt.Errorf("%w: %s: TTL %v must be > 0", ErrInvalidPolicy, p.Name, p.TTL)
	case p.Jitter < 0 || p.Jitter >= p.TTL:
		return fmt.Errorf("%w: %s: jitter %v must be in [0, TTL)", ErrInvalidPolicy, p.Name, p.Jitter)
	case p.NegativeTTL < 0 || p.StaleWhileRevalidate < 0 || p.EarlyRefresh < 0:
		return fmt.Errorf("%w: %s: negative TTL, stale window or early refresh", ErrInvalidPolicy, p.Name)
	}
	for _, t := range p.Tags {
		if t == "" {
			return fmt.Errorf("%w: %s: empty tag", ErrInvalidPolicy, p.Name)
		}
	}
	return nil
}

// The jeweller presets: the six kinds of entry the platform karat was born
// in caches. Copy one and change a field to make a policy of your own.
var (
	// KPI: a shop's dashboard figures. Fresh for a minute; a slightly old
	// figure is better than a slow dashboard, so it is served stale for 30 s
	// while one refresh runs, and hot keys refresh early.
	KPI = Policy{Name: "kpi", TTL: time.Minute, Jitter: 6 * time.Second,
		StaleWhileRevalidate: 30 * time.Second, EarlyRefresh: 1}
	// Customer: a shop's customer record, for an hour; an unknown customer id
	// is remembered for a minute.
	Customer = Policy{Name: "customer", TTL: time.Hour, Jitter: 5 * time.Minute, NegativeTTL: time.Minute}
	// Product: a shop's catalogue entry, for an hour; unknown ids for a minute.
	Product = Policy{Name: "product", TTL: time.Hour, Jitter: 5 * time.Minute, NegativeTTL: time.Minute}
	// Invoice: five minutes (invoices change while they are drafted); unknown
	// ids for 30 s.
	Invoice = Policy{Name: "invoice", TTL: 5 * time.Minute, Jitter: 30 * time.Second, NegativeTTL: 30 * time.Second}
	// Permissions: a user's permissions in a shop, for an hour. Never served
	// stale and never loaded around a failing store silently: a revoked
	// permission must not linger past an invalidation.
	Permissions = Policy{Name: "permissions", TTL: time.Hour, Jitter: 5 * time.Minute}
	// GoldPrice: the price every shop shares (not tenant-scoped), for five
	// minutes, served stale for a minute while it refreshes, and loaded from
	// the price feed directly when the store is down.
	GoldPrice = Policy{Name: "gold-price", TTL: 5 * time.Minute, Jitter: 15 * time.Second,
		StaleWhileRevalidate: time.Minute, Global: true, FallbackToLoader: true}
)
