package store

import (
	"context"
	"time"
)

// CapInt64Update names the Int64Updater capability in Capabilities' list.
const CapInt64Update = "int64-update"

// Int64Updater is the optional capability of changing the integer held in
// one key with a Go function, in process: a read-modify-write without a
// script, without boxing results in a Value and without allocating per call.
// The memory driver offers it; a Redis driver cannot (its data is in another
// process) and does not. A layer uses it for a hot path on one key and falls
// back on its Script when the store lacks it, so the two must agree: the
// function sees what the script's Go body would read and makes the write it
// would make.
//
// A wrapper store that changes how calls behave (fails or delays them) must
// implement Int64Updater too, since Capability looks through wrappers.
type Int64Updater interface {
	// UpdateInt64 calls fn with u, whose Now, Value and Found the store has
	// set, and applies the change fn returns, atomically with respect to
	// every other call on key; it returns fn's result. key is not kept: a
	// store that keeps it copies it (so a caller may build it in a buffer
	// it reuses), and an error does not quote it. The rules of every
	// Store call hold (a done ctx, a bad key, a closed store, waiting for a
	// key another call holds, the cap of a memory store); on an error
	// nothing was changed. fn runs while the key's lock is held: it must be
	// quick, must not block and must not call the store. It may be called
	// more than once for one UpdateInt64 (when making room under a cap had
	// to wait), and must then decide from its argument alone: only the last
	// call's change is applied. u.Wait bounds the wait for a key another
	// call holds, on top of ctx, so that a caller need not wrap ctx in a
	// deadline of its own for every call (a timer and allocations);
	// running out of it is an error that is both ErrUnavailable and
	// context.DeadlineExceeded, as a Redis call that passes its deadline.
	//
	// Value and Found: the key holds a string of decimal digits, with an
	// optional leading '-' (leading zeros allowed), within int64, which is
	// Value; Found is false for a missing or expired key and for a string
	// that is not such a number (Value 0). A key that holds a hash gives
	// ErrWrongType without calling fn.
	//
	// The change: Int64Keep writes nothing (reading counts as use, as Get
	// does); Int64Set stores New as a decimal string with TTL (the rules of
	// Set: > 0 expires, rounded up to a millisecond; 0 never expires; < 0 is
	// ErrInvalidTTL), replacing any previous TTL, as Set would, so that Get
	// and scripts read exactly what a script would have written;
	// Int64Delete deletes the key.
	UpdateInt64(ctx context.Context, key string, fn Int64Func, u Int64Update) (Int64Update, error)
}

// Int64Func decides one change for an Int64Updater. It gets the update by
// value and returns it by value (so that nothing it is given escapes to the
// heap), with Op, New, TTL and Result set.
type Int64Func func(u Int64Update) Int64Update

// Int64Op is the change an Int64Func asks for.
type Int64Op uint8

// The changes an Int64Func can ask for.
const (
	Int64Keep   Int64Op = iota // write nothing
	Int64Set                   // store New with TTL
	Int64Delete                // delete the key
)

// Int64Update is what flows through an Int64Updater: the caller's
// arguments in, the store's reading, and fn's change and result out.
type Int64Update struct {
	// Args are the caller's, for fn; the store does not read them.
	Args [6]int64
	// Wait, set by the caller, is the longest the store waits for the key
	// while another call holds it; 0 leaves the wait to ctx alone.
	Wait time.Duration

	// Set by the store before it calls fn.
	Now   time.Time // the store's clock, truncated to a microsecond, as scripts see it
	Value int64     // the integer the key holds (see UpdateInt64); 0 when not Found
	Found bool      // the key holds such an integer

	// Set by fn.
	Op  Int64Op       // the change
	New int64         // Int64Set: the value to store
	TTL time.Duration // Int64Set: its TTL

	// Result is fn's, for the caller; the store does not read it.
	Result [4]int64
}
