package store

import (
	"context"
	"time"
)

// Store is the contract every driver implements. It is safe for concurrent
// use. Rules that hold for every method unless it says otherwise:
//
//   - A context that is already done makes the call return its error
//     (context.Canceled or context.DeadlineExceeded) without writing anything.
//     A deadline that passes while the call waits on the server returns an
//     error that is both ErrUnavailable and context.DeadlineExceeded; the write
//     may or may not have happened.
//   - A key must be non-empty and at most MaxKeyLen bytes, else ErrInvalidKey.
//   - Keys of one multi-key call must share a cluster slot, else ErrCrossSlot,
//     checked before anything is sent.
//   - Values are arbitrary bytes. An empty value is stored and read back as a
//     non-nil empty slice, distinct from a missing key.
//   - TTL rules are in the package doc: > 0 expires (rounded up to a whole
//     millisecond, clamped to MaxTTL), 0 never expires, < 0 is ErrInvalidTTL.
//   - After Close, every method returns ErrClosed.
type Store interface {
	// Get returns the value of a string key, or ErrNotFound. A hash key gives
	// ErrWrongType. Get always asks the server; see CachedReader for the
	// cached path.
	Get(ctx context.Context, key string) ([]byte, error)

	// MGet returns one entry per key, in order: the value, or nil for a key
	// that is missing or is not a string. The keys must share a slot. No keys
	// gives an empty result.
	MGet(ctx context.Context, keys ...string) ([][]byte, error)

	// Set stores val under key with the given TTL, replacing any value of any
	// type and any previous TTL.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error

	// SetNX stores val with the TTL only if key does not exist, and reports
	// whether it did. Among concurrent callers exactly one wins.
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)

	// Delete removes the keys (strings or hashes) and returns how many
	// existed. The keys must share a slot. No keys returns 0.
	Delete(ctx context.Context, keys ...string) (int64, error)

	// HGet returns one field of a hash, or ErrNotFound when the key or the
	// field is missing. A string key gives ErrWrongType.
	HGet(ctx context.Context, key, field string) ([]byte, error)

	// HSet sets the given fields of a hash, creating it if needed; other
	// fields and the key's TTL are kept. No fields is a no-op. A string key
	// gives ErrWrongType.
	HSet(ctx context.Context, key string, fields map[string][]byte) error

	// HDel removes fields from a hash and returns how many existed. A hash
	// left without fields no longer exists (as in Redis).
	HDel(ctx context.Context, key string, fields ...string) (int64, error)

	// HGetAll returns every field of a hash, or ErrNotFound for a missing key.
	HGetAll(ctx context.Context, key string) (map[string][]byte, error)

	// IncrBy adds delta to the integer in key and returns the new value,
	// atomically. A missing key counts as 0 and is created; the TTL is applied
	// only when this call creates the key (a key that exists and holds 0 was
	// not created), and ttl == 0 creates it without expiry. A value that is
	// not a base-10 int64, or an overflow, gives ErrNotInteger.
	IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)

	// Expire sets the TTL of an existing key: ttl > 0 expires it, ttl == 0
	// removes its expiry. It reports false when the key does not exist.
	Expire(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// TTL returns the remaining time to live of a key: a positive duration
	// with millisecond resolution (at least 1ms), 0 for a key that exists
	// without expiry, and ErrNotFound for a missing key.
	TTL(ctx context.Context, key string) (time.Duration, error)

	// Eval runs a script atomically over keys (which must share a slot) with
	// the given arguments. Redis drivers run its Lua body (EVALSHA, then EVAL
	// on NOSCRIPT); the memory driver runs its Go body under one lock. An error
	// the body raises comes back as a *ScriptError; a store error met inside
	// the body (ErrWrongType, ...) comes back as that class.
	Eval(ctx context.Context, s *Script, keys []string, args ...string) (Value, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error

	// Close releases what the driver opened. A client the user passed in
	// stays open. Close is idempotent; later calls return nil.
	Close() error

	// As sets target, a pointer to a type the driver knows (for example
	// *redis.UniversalClient or *rueidis.Client), to the underlying client and
	// reports whether it could.
	As(target any) bool
}

// CachedReader is the optional capability of reading through a client-side
// cache.
type CachedReader interface {
	// GetCached is Get that may answer from a client-side cache. The value
	// returned is never older than maxStale: it was current on the server at
	// some moment within maxStale before the call returned, a silent network
	// partition included. Read-your-writes holds per store instance: a key
	// this instance wrote or deleted is read from the server until maxStale
	// has passed since the write. maxStale <= 0 reads from the server.
	GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error)
}

// CachedStringReader is GetCached returning a string, offered beside
// GetCached by a CachedReader that can answer a hit without copying: a
// string cannot be changed, so it may share the memory of the client-side
// cache, while the []byte of GetCached belongs to the caller and must be a
// copy. Bounds, errors and counting are GetCached's. A caller that decodes
// the value and keeps nothing of the bytes (every session validation, every
// cache hit) saves a copy per read; see CachedStrings.
type CachedStringReader interface {
	GetCachedString(ctx context.Context, key string, maxStale time.Duration) (string, error)
}

// CachedStrings returns the string form of cr: cr itself when it is a
// CachedStringReader, else an adapter that converts GetCached's value (one
// more copy). It looks at cr only, never under it: a wrapper that wraps
// GetCached (to count, trace or inject faults) and not GetCachedString is
// therefore never bypassed. Call it once, where the CachedReader is found.
func CachedStrings(cr CachedReader) CachedStringReader {
	if sr, ok := cr.(CachedStringReader); ok {
		return sr
	}
	return cachedStrings{cr}
}

type cachedStrings struct{ cr CachedReader }

func (c cachedStrings) GetCachedString(ctx context.Context, key string, maxStale time.Duration) (string, error) {
	b, err := c.cr.GetCached(ctx, key, maxStale)
	return string(b), err
}

// Scanner is the optional capability of listing keys by prefix.
type Scanner interface {
	// Scan calls fn with batches of keys that begin with prefix, on every
	// master of a cluster. Keys written or deleted during the scan may or may
	// not be reported; a key present throughout is reported at least once.
	// The prefix is matched literally (glob characters in it are escaped).
	// An error from fn stops the scan and is returned.
	Scan(ctx context.Context, prefix string, fn func(keys []string) error) error
}

// StatsReporter is the optional capability of reporting counters.
type StatsReporter interface {
	// Stats returns a snapshot of the driver's counters.
	Stats() Stats
}

// Stats are a driver's counters since it was opened. A field the driver does
// not track stays zero.
type Stats struct {
	Calls       uint64 // Store method calls made
	Errors      uint64 // calls that failed, except ErrNotFound and the caller's context errors
	CacheHits   uint64 // GetCached answered from the client-side cache
	CacheMisses uint64 // GetCached that asked the server
	Keys        int64  // memory driver: keys held
	Bytes       int64  // memory driver: bytes accounted for keys and values
	Evictions   uint64 // memory driver: keys evicted to stay under the cap
	Expired     uint64 // memory driver: keys removed because their TTL passed
}

// Names of the optional capabilities, as conformance harnesses declare them.
const (
	CapCachedReads = "cached-reads"
	CapScan        = "scan"
	CapStats       = "stats"
)

// Unwrapper is implemented by a Store that wraps another, so that
// Capability can look through it.
type Unwrapper interface {
	Unwrap() Store
}

// Capability returns s, or the first store under it found through Unwrap, as
// a T, and whether one was found.
func Capability[T any](s Store) (T, bool) {
	for s != nil {
		if c, ok := s.(T); ok {
			return c, true
		}
		u, ok := s.(Unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Capabilities lists the names of the optional capabilities s offers, sorted.
func Capabilities(s Store) []string {
	var caps []string
	if _, ok := Capability[CachedReader](s); ok {
		caps = append(caps, CapCachedReads)
	}
	if _, ok := Capability[Int64Updater](s); ok {
		caps = append(caps, CapInt64Update)
	}
	if _, ok := Capability[Scanner](s); ok {
		caps = append(caps, CapScan)
	}
	if _, ok := Capability[StatsReporter](s); ok {
		caps = append(caps, CapStats)
	}
	if _, ok := Capability[UsageReporter](s); ok {
		caps = append(caps, CapUsage)
	}
	return caps
}
