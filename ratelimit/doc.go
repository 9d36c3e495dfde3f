// Package ratelimit limits requests with named policies kept in a karat
// store (Redis, Redis Cluster or memory), exactly, in one store round trip
// per decision, on the store's clock.
//
// Start here:
//
//	l := ratelimit.New(s, nil)                          // s: any store.Store
//	d, err := l.Allow(ctx, ratelimit.API, "ip4:203.0.113.9", 1)
//	if err == nil && !d.Allowed { /* 429, Retry-After: d.RetryAfter */ }
//
// or, for HTTP, l.Middleware(rules, nil) on a net/http mux or a gorilla/mux
// router. A Policy is a name, a Limit per Window and options; the presets
// API, Login, PasswordReset, InvoiceCreation and Upload are ready to use,
// ParsePolicy reads "api 100/15m fail=open" from configuration, and Tiers
// or Rule.Tier choose a policy per request (a shop's plan).
//
// # Algorithms
//
// GCRA (the default) keeps one number per subject and policy: the
// theoretical arrival time (TAT), in microseconds of the store's clock.
// The emission interval T is Window/Limit, rounded up to a microsecond (so
// rounding never admits more than Limit per Window); the bucket holds Burst
// (default Limit) units. A request of cost n is admitted when
// max(TAT, now) + n·T − now ≤ Burst·T. Bound: between any two admitted
// requests d apart, at most Burst + ⌊d/T⌋ units were admitted; so any
// window of length Window admits at most Burst + Limit (a full bucket then
// its refill), and a steady client gets Limit per Window.
//
// SlidingWindow counts per fixed window (aligned on the store's clock) and
// estimates the sliding window as current + ⌈previous × (1 − elapsed/W)⌉,
// the weight computed in whole milliseconds and rounded up (so rounding
// only ever denies). Bound: every fixed window admits at most Limit, and
// any sliding window of length W at most 2·Limit − 1 (reached only when the
// previous window's requests all came at its very end); with evenly spread
// traffic it is within a few percent of Limit. Unlike a fixed-window
// limiter, it does not admit 2·Limit across a boundary: just after the
// boundary the previous window still weighs almost fully.
//
// # One round trip, the store's clock, exact under contention
//
// Every decision is one store.Script (Lua on Redis, Go on the memory driver,
// proved equal by conformance.CheckScript) that reads the time inside the
// script (Redis TIME, in microseconds), decides, and writes only when it
// admits: a denied request charges nothing, and there is no
// compare-and-swap loop to fail under contention (1,024 concurrent requests
// on one key admit exactly Limit, from one process or four). The
// application's clock (Options.Clock) is never used to decide; the local
// memories below use only differences of it, so servers whose clocks
// disagree decide alike.
//
// The hot path, one GCRA policy charged by Allow, has two scripts. A policy
// whose emission interval is a whole number of milliseconds (every preset,
// any rate up to 1,000 a second with a whole-millisecond interval) keeps
// its theoretical arrival time as the key's expiry, with an empty value:
// the script reads the key's PTTL (the server's clock, at Redis's
// millisecond resolution) and sets the key with PX, two commands, and
// returns one integer from which the Limiter derives the Decision. Its
// bound is GCRA's on the server's millisecond clock: measured against real
// time, a span may admit what refills in that span plus one millisecond.
// Any other GCRA policy reads TIME (microseconds) and keeps the time in the
// value: three commands. The general script (several policies, Peek,
// refunds) reads both states, so a policy can take either path on one key.
//
// # In process, on the memory driver
//
// On a store that offers store.Int64Updater (the memory driver), Allow and
// Peek of one GCRA policy skip the script: the same decision (gcraUpdate,
// proved equal to the scripts request by request on a fake clock, values
// and TTLs of the written keys included) runs as a Go function on the TAT,
// kept as a typed int64 beside its decimal string, under the key's shard
// lock, with no Value boxing and no allocation beyond the key. Sets of
// policies (AllowAll), sliding windows and refunds still run the script.
// Options.Timeout reaches that path as the longest the store waits for a
// key another call holds (Int64Update.Wait), so an uncontended decision
// makes no deadline context and reads no clock for one.
//
// A memory store with a cap (MaxBytes, MaxEntries) holds millions of
// subjects within it by evicting the least recently used keys that carry a
// TTL, which every limiter key does. An evicted bucket is forgotten: the
// subject starts afresh and is admitted again, even within its window. So
// size the cap for the subjects active within one Window (about 110 bytes
// of accounted memory per GCRA subject and policy); subjects that keep
// coming back stay recently used and are never evicted before idle ones.
// No part of this takes a lock over the whole store for a sweep: expiry
// and eviction work one shard at a time.
//
// A GCRA key's TTL is the time until its bucket is full again (at most
// Burst·T, which is Window when Burst is Limit); a sliding-window key lives
// until its current count no longer weighs (at most 2·Window). Idle
// subjects cost nothing.
//
// # Decisions
//
// Allow charges when it admits; Peek never charges (any number of peeks
// change nothing). Decision carries Remaining (never negative), ResetAfter
// (until the count is back to zero), RetryAfter (until the same request
// would be admitted) and Never (the cost exceeds the burst: retrying cannot
// help, so no retry time is given). Reset deletes a subject's count.
// Charging only failures (Login): Peek before, Allow after a failure; the
// middleware does it for policies marked ChargeFailuresOnly. Concurrent
// failures that all peeked before any was charged are all charged, so a
// burst of parallel attempts can run a little past the limit before it
// closes; sequential attempts cannot.
//
// # Several policies on one request
//
// AllowAll decides a set of Requests (say IP, user and route) all or
// nothing. Keys are hash-tagged by subject (Request.Key), so every policy
// on one subject lives in one Redis Cluster slot and is decided by one
// script, atomically, in one round trip. Policies on different subjects
// (different slots) are reserved subject by subject, in the order given:
// each reservation is a real charge; when a later subject denies, the
// earlier reservations are refunded (one script each) and the rest are not
// asked. What holds under a crash (or a store error, or the caller's
// deadline) between a reservation and its refund: the reserved subjects stay
// charged for a request that did not happen, over-counting by at most that
// request's cost until their buckets refill (Stats.RefundErrors counts
// failed refunds). Nothing is ever admitted beyond a limit; in the window
// between reserve and refund a concurrent request may be denied by the
// reservation.
//
// # The "blocked until" memory
//
// Each Limiter remembers, for keys the store denied, until when (the
// RetryAfter it was told) a request of at least that cost is denied, and
// answers those denials itself (Decision.Local) without a round trip:
// blocked clients cost nothing. It only answers denials, so it never admits
// more than the store would. Reset on the same Limiter clears its memory;
// another instance's Reset is seen by this one only when its remembered
// retry time has passed (at most RetryAfter later): until then it keeps
// denying. The memory is sharded and capped (Options.BlockedKeys); a full
// shard forgets expired entries, then stops remembering (costing round
// trips, never wrong answers).
//
// # Failure
//
// Each store call is bounded by the caller's context and Options.Timeout
// (default 250 ms). When the store errors or the deadline passes, each
// policy's FailMode decides: FailClosed denies with Options.FailRetryAfter,
// FailOpen admits and counts it (Stats.FailedOpen), FailLocal decides with
// an in-process GCRA at Policy.LocalShare of the limit (default half; set it
// to about 1/number of instances). Decision.Degraded carries the store
// error. Bad input (an invalid policy, cost or key) is an error, never a
// fail-mode decision and never a panic. The presets' choices: API open,
// Login and PasswordReset closed, InvoiceCreation and Upload local.
//
// # HTTP
//
// ClientIP finds the client's address: the peer's address unless the peer
// is a trusted proxy (CIDRs given to NewClientIP); then RFC 7239 Forwarded,
// or else X-Forwarded-For, walked right to left past trusted proxies. An
// untrusted client's headers are ignored, so it cannot choose its bucket.
// IPv6 clients are grouped by /64. Prefixed, Route and Join build other
// keys (user, tenant, route). Middleware sets, for every policy that
// applied, RateLimit-Policy ("api";q=100;w=900;pk=:…:) and RateLimit
// ("api";r=99;t=9;pk=:…:) as draft-ietf-httpapi-ratelimit-headers defines
// them, with the partition key pk a hash of the subject key (never a raw IP
// address), Retry-After on 429, and, with LegacyHeaders, X-RateLimit-Limit,
// -Remaining and -Reset.
//
// # Keys
//
// Every key is Options.Namespace (default "karat:ratelimit") + the subject
// as hash tag + the policy name, built with store.Namespace.TaggedKey, so
// hostile subjects (*, {, newlines, invalid UTF-8, up to 16 KiB) are
// encoded; a larger subject is refused with store.ErrInvalidKey. Policies
// sharing a Name share a count on a subject: a tier change keeps what was
// used; unrelated policies need distinct names. Changing a sliding window's
// Window starts its counts afresh.
package ratelimit
