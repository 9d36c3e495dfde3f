// Package store is karat's driver contract: the small set of operations that
// sessions, caches and rate limits need from Redis, written down exactly enough
// that three very different drivers (in-memory, go-redis, rueidis) behave the
// same, and that the conformance suite can prove it.
//
// Start with [Store]: every method documents its semantics. Around it:
//
//   - Errors are sentinel values ([ErrNotFound], [ErrUnavailable], ...) that
//     drivers join with the raw cause, so errors.Is works on the class and
//     errors.As still reaches the client library's error.
//   - [Key] and [TaggedKey] build keys from untrusted parts with an injective,
//     glob-free encoding; [Slot] is the Redis Cluster hash slot. Every driver,
//     the memory driver included, refuses a multi-key call whose keys span
//     slots with [ErrCrossSlot].
//   - [Script] is an atomic operation with two bodies, Lua for Redis and Go for
//     the memory driver, that must agree; conformance.CheckScript proves it.
//   - Optional capabilities ([CachedReader], [Scanner], [StatsReporter]) are
//     one-method interfaces found with [Capability], through wrappers. A
//     CachedReader may also be a [CachedStringReader] (a hit without a copy),
//     found on the reader itself with [CachedStrings].
//
// Time: a TTL is a [time.Duration]. ttl > 0 expires the key after ttl, rounded
// up to a whole millisecond (Redis keeps milliseconds; rounding up means a key
// never expires before it was asked to and a sub-millisecond TTL never turns
// into "no expiry"); ttl == 0 means no expiry; ttl < 0 is [ErrInvalidTTL].
// A ttl above [MaxTTL] (about 292 years, the largest whole-millisecond
// Duration), math.MaxInt64 as "forever" included, is clamped to MaxTTL: the
// key is kept and TTL reports at most MaxTTL. Clamping, not an error, is the
// rule because Redis accepts such TTLs and "a huge ttl" is a common way to
// say "practically never"; MaxTTL, not Redis's own limit, because TTL must
// return it as a Duration.
//
// This package imports the standard library only.
package store
