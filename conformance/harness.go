package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

// Harness gives the suite stores over one backend.
type Harness interface {
	// MakeStore returns a new store instance. Instances made by one harness
	// share their data, as two processes sharing a Redis do; the cached-read
	// cases need two. The suite closes what it makes.
	MakeStore(ctx context.Context) (store.Store, error)
	// Capabilities lists the capabilities (store.CapCachedReads, ...) that
	// the harness expects its stores to have, no more and no fewer.
	Capabilities() []string
	// Close releases the harness. The suite calls it when the case ends.
	Close()
}

// HarnessMaker makes a fresh harness for one case.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)

// Clock is implemented by a harness that controls the store's time: the
// memory driver's fake clock, or miniredis. Without it, TTL cases poll real
// time with short TTLs and the clock case compares with the machine's clock.
type Clock interface {
	// SetNow sets the time scripts see (Lua TIME, ScriptView.Now).
	SetNow(t time.Time)
	// Advance moves key expiry forward by d.
	Advance(d time.Duration)
}

// Staller is implemented by a harness whose store talks to its server over a
// network that the harness can cut silently.
type Staller interface {
	// StalledStore returns a store whose connections go through a proxy,
	// and a function that makes the proxy stop forwarding while keeping every
	// connection open (a silent partition).
	StalledStore(ctx context.Context) (s store.Store, stall func(), err error)
}

// Partitioner is implemented by a harness that can cut one store off its
// server silently while other stores keep working (a loopback proxy that
// stops forwarding). The cached-read bound under partition needs it: the
// writer must get through while the reader hears nothing.
type Partitioner interface {
	// PartitionedStore returns a store whose connections go through a proxy,
	// and a function that makes the proxy stop forwarding.
	PartitionedStore(ctx context.Context) (s store.Store, cut func(), err error)
}

// ClientOwner is implemented by a harness whose driver accepts a client made
// by the user.
type ClientOwner interface {
	// StoreOverClient returns a store built over a client the harness made
	// (as a user would, so the store must not close it) and a function that
	// checks the client still works.
	StoreOverClient(ctx context.Context) (s store.Store, clientWorks func(context.Context) error, err error)
}

// Capper is implemented by a harness that can make a store with a hard cap on
// the number of keys (the memory driver).
type Capper interface {
	CappedStore(ctx context.Context, maxEntries int) (store.Store, error)
}

// URLer is implemented by a harness whose backend another OS process can
// reach by URL (anything drivers.Open takes). The cross-process cases need
// it: they start worker processes that open their own stores.
type URLer interface {
	// StoreURL returns the URL a worker process opens its store with.
	StoreURL() string
}
