// Package drivercore is the bookkeeping that every karat driver shares, so
// that all of them count, check and close alike: the closed flag, the call and
// error counters behind store.Stats, and the checks every call starts with.
package drivercore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/internal/shardcount"
	"github.com/karat-go/karat/store"
)

// Gate is embedded (as a named field) by each driver's Store. Its zero value
// is an open store with nothing counted.
type Gate struct {
	closed atomic.Bool
	calls  Counter
	errs   Counter
}

// Begin counts a call and makes the checks every call starts with, in this
// order: the store is open (ErrClosed), ctx is not done (its error), the keys
// are valid and share a slot (ErrInvalidKey, ErrCrossSlot).
func (g *Gate) Begin(ctx context.Context, keys ...string) error {
	g.calls.Add(1)
	return g.Check(ctx, keys...)
}

// Check is Begin without counting the call, for a hot path that counts its
// calls in a counter of its own (rueidisstore counts a cache hit once, as a
// hit); the caller counts the call with CountCall or its own counter. A
// failed check is counted as an error all the same.
func (g *Gate) Check(ctx context.Context, keys ...string) error {
	if g.closed.Load() {
		return g.End(store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return g.End(store.ValidateKeys(keys))
}

// CheckKey is Check for one key, without the variadic slice: the cache-hit
// path of rueidisstore calls it.
func (g *Gate) CheckKey(ctx context.Context, key string) error {
	if g.closed.Load() {
		return g.End(store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidateKey(key); err != nil {
		return g.End(err)
	}
	return nil
}

// CountCall counts a call that Check began.
func (g *Gate) CountCall() { g.calls.Add(1) }

// BeginTTL is Begin for a call on one key that also takes a TTL.
func (g *Gate) BeginTTL(ctx context.Context, key string, ttl time.Duration) error {
	if err := g.Begin(ctx, key); err != nil {
		return err
	}
	return g.End(store.ValidateTTL(ttl))
}

// End counts err in the error counter when CountsAsError says so, and
// returns it.
func (g *Gate) End(err error) error {
	if CountsAsError(err) {
		g.errs.Add(1)
	}
	return err
}

// Close counts the call and marks the store closed. It reports whether this
// call closed it (false when it was closed already).
func (g *Gate) Close() bool {
	g.calls.Add(1)
	return !g.closed.Swap(true)
}

// Counts returns the call and error counters.
func (g *Gate) Counts() (calls, errs uint64) {
	return g.calls.Load(), g.errs.Load()
}

// CountsAsError reports whether err, returned by a Store call, counts in
// store.Stats.Errors: every failure except ErrNotFound and the caller's own
// context errors. A deadline that passed while the call waited on the server
// is ErrUnavailable and counts: it says the server was slow, not that the
// caller gave up.
func CountsAsError(err error) bool {
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return false
	}
	if errors.Is(err, store.ErrUnavailable) {
		return true
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Counter is shardcount.Counter: a call counter that cores seldom share a
// cache line of.
type Counter = shardcount.Counter
