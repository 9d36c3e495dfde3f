// Package memstore is karat's in-memory store driver: the reference
// implementation of the store contract, the store of tests and of single
// process deployments.
//
// Choices, each one a promise the conformance suite checks:
//
//   - Keys are sharded by Redis Cluster slot, so every multi-key call and
//     every script (whose keys must share a slot) takes exactly one shard
//     lock and is atomic.
//   - Every operation, the public methods included, runs through the same
//     view type that script bodies see, and writes through an overlay that is
//     committed only when the operation succeeds: semantics cannot drift
//     between a method and its script-view twin, and a failing script writes
//     nothing.
//   - Time comes from an injectable Clock (FakeClock for tests). A key with a
//     TTL expires once the clock is past its expiry instant (as Redis keeps a
//     key until then). Expired keys are removed lazily, when an operation
//     touches them, and incrementally: every write examines up to 8 other
//     keys of its shard and removes those expired for more than a second
//     (a key written again within that second reuses its entry: rate-limit
//     buckets live exactly until they refill). An expired key reads as
//     missing from its expiry instant on, removed or not; until removed it
//     still counts towards MaxEntries and MaxBytes, and eviction may take
//     it like any key with a TTL, least recently used first.
//   - A hard cap on keys (MaxEntries) and on bytes (MaxBytes) is never
//     exceeded. To make room, only keys that carry a TTL are evicted, least
//     recently used first across the whole store (reads and writes count as
//     use), never a key of the call itself; a key without TTL (a revocation
//     marker, a limiter key) is never evicted silently. A write that would
//     not fit even after evicting every other key with a TTL is refused with
//     store.ErrFull, having written and evicted nothing. When a victim's
//     shard is held by another call, the call lets go of its own shard,
//     evicts that victim once its shard is free, and runs again (so a script
//     body may run more than once; only the last run's writes count). Under
//     that contention a key may be evicted slightly out of LRU order; without
//     it the order is exact.
//   - Values are copied in and out.
//   - UpdateInt64 (store.Int64Updater) changes an integer key with a Go
//     function under its shard lock, without a script: the integer is kept
//     typed, its decimal string (which every other call reads) is written
//     when first read, and an existing or expired key is rewritten in
//     place, so an update allocates nothing. It sweeps its shard only when
//     it adds a key.
//   - The machine's clock is read as time.Now at New plus the monotonic
//     time since (one clock read per call instead of two; it follows the
//     system clock's slewing but not a step made after New).
//   - A call that waits for a shard another call holds (a long script body)
//     parks on a channel after a few reads of the lock (a spin of well
//     under a microsecond, for the common hold of one key's update), and stops waiting when its context
//     is done: a passed deadline returns an error that is both
//     store.ErrUnavailable and context.DeadlineExceeded (as a Redis driver's
//     call to a busy server does), a cancellation context.Canceled. Close
//     does not wait for running calls: waiting calls return store.ErrClosed,
//     and a held shard's keys are dropped when its holder lets go.
//   - A TTL above store.MaxTTL (math.MaxInt64 as "forever", say) is clamped to
//     it, as by every driver.
//   - A script without a Go body fails with errors.ErrUnsupported; a script
//     that declares no keys can touch no key, "" included.
package memstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/internal/drivercore"
	"github.com/karat-go/karat/store"
)

// Clock is where the store reads time.
type Clock interface{ Now() time.Time }

// systemClock is the machine's clock as time.Now read once, at New, plus
// the monotonic time since: one clock read per call where time.Now makes
// two (on a virtual machine a clock read is a visible share of a small
// call), and a clock that never goes backwards. The system clock's slewing
// (NTP) changes the monotonic clock's rate alike; a step of the system
// clock after New is not followed.
type systemClock struct {
	base     time.Time // with its monotonic reading
	baseNano int64     // base in Unix nanoseconds
}

func newSystemClock() systemClock {
	now := time.Now()
	return systemClock{base: now, baseNano: now.UnixNano()}
}

// Now returns the machine's time (without a monotonic reading: the store
// compares and adds times, which is cheaper without).
func (c systemClock) Now() time.Time { return time.Unix(0, c.baseNano+int64(time.Since(c.base))) }

// nowMicro is the store's clock truncated to a microsecond, as scripts and
// UpdateInt64 see it: from the machine's clock in whole microseconds
// directly (Time.Truncate divides by a Duration the slow way, a visible
// share of an in-process rate-limit decision), from any other Clock by
// Truncate.
func (s *Store) nowMicro() time.Time {
	if c, ok := s.clock.(systemClock); ok {
		return time.UnixMicro((c.baseNano + int64(time.Since(c.base))) / 1000)
	}
	return s.clock.Now().Truncate(time.Microsecond)
}

// FakeClock is a Clock that moves only when told to. It is safe for
// concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set sets the clock to t (backwards too).
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Options configures a Store. The zero value (and nil) is valid: no cap, the
// machine's clock.
type Options struct {
	// MaxEntries caps the number of keys; 0 means no cap.
	MaxEntries int
	// MaxBytes caps the bytes accounted for keys: the key, the value (for a
	// hash, every field name and value) and EntryOverhead per key. 0 means no
	// cap.
	MaxBytes int64
	// Clock is the store's time; nil means the machine's clock.
	Clock Clock
}

// EntryOverhead is the fixed number of bytes each key is accounted for
// besides its key and value bytes, so that many tiny keys still fill
// MaxBytes.
const EntryOverhead = 64

const (
	shardCount = 64
	sweepLimit = 8
	// sweepGrace is how long an expired key may stay for reuse before a
	// sweep removes it (see Store.sweep).
	sweepGrace = time.Second
)

type kind uint8

const (
	kindString kind = iota + 1
	kindHash
)

type entry struct {
	kind kind
	// num caches str read as UpdateInt64 reads integers (numUnknown until
	// then); only UpdateInt64 sets it, and writes str and num together.
	numState numState
	num      int64
	str      []byte
	hash     map[string][]byte
	expireAt time.Time     // zero: no expiry
	lru      *list.Element // in Store.lru when the entry has a TTL
}

func (e *entry) size(key string) int64 {
	n := int64(len(key) + EntryOverhead + len(e.str))
	if e.hash == nil {
		return n // ranging over a nil map still starts an iterator
	}
	for f, v := range e.hash {
		n += int64(len(f) + len(v))
	}
	return n
}

// shard is one lock and the keys under it.
type shard struct {
	mu   ctxMutex
	data map[string]*entry
}

// ctxMutex is a mutex whose waiters can give up: when their context is done,
// or when the store closes. Like sync.Mutex, a caller that finds it free
// takes it at once (barging), so a hot shard is not handed from one parked
// goroutine to the next; waiters park on a channel (never spin) and are
// woken, one per unlock, to try again.
type ctxMutex struct {
	held    atomic.Bool
	waiters atomic.Int32
	wake    chan struct{} // capacity 1: "the mutex was released"
}

func newCtxMutex() ctxMutex { return ctxMutex{wake: make(chan struct{}, 1)} }

// spinTries is how many times a caller that finds the mutex held reads it
// again before it parks: most holds last well under a microsecond (one
// key's update), and parking and waking cost microseconds, so a caller
// that finds the mutex held by a call running on another core waits a
// little first, as sync.Mutex does. A long hold (a long script body)
// still parks its waiters after that.
const spinTries = 64

// spin tries to take the mutex for a short while and reports whether it
// did. (On one processor the holder cannot run meanwhile: the spin is then
// a few wasted reads before parking.)
func (m *ctxMutex) spin() bool {
	for range spinTries {
		if !m.held.Load() && m.held.CompareAndSwap(false, true) {
			return true
		}
	}
	return false
}

// lock takes the mutex, or gives up when ctx is done (see waitErr) or
// closing is closed (store.ErrClosed).
func (m *ctxMutex) lock(ctx context.Context, closing <-chan struct{}) error {
	return m.lockUntil(ctx, closing, nil, 0)
}

// lockUntil is lock that also gives up when expire (nil: never) is closed,
// with an error that is store.ErrUnavailable and context.DeadlineExceeded:
// the caller's bound on the wait, wait (for the message).
func (m *ctxMutex) lockUntil(ctx context.Context, closing, expire <-chan struct{}, wait time.Duration) error {
	if m.spin() {
		return nil
	}
	for {
		if m.held.CompareAndSwap(false, true) {
			return nil
		}
		m.waiters.Add(1)
		// Again, now that an unlock will see this waiter and wake it.
		if m.held.CompareAndSwap(false, true) {
			m.waiters.Add(-1)
			return nil
		}
		select {
		case <-m.wake:
			m.waiters.Add(-1)
			if m.spin() {
				return nil
			}
		case <-ctx.Done():
			m.waiters.Add(-1)
			m.passWake() // a wake meant for this waiter goes to the next
			return waitErr(ctx)
		case <-expire:
			m.waiters.Add(-1)
			m.passWake()
			return fmt.Errorf("%w: memstore: waited %v for a shard another call holds: %w", store.ErrUnavailable, wait, context.DeadlineExceeded)
		case <-closing:
			m.waiters.Add(-1)
			m.passWake()
			return store.ErrClosed
		}
	}
}

// lockWait takes the mutex, waiting as long as it takes (Close uses it to
// empty a shard once its holder lets go).
func (m *ctxMutex) lockWait() {
	_ = m.lock(context.Background(), nil)
}

// tryLock takes the mutex if it is free.
func (m *ctxMutex) tryLock() bool { return m.held.CompareAndSwap(false, true) }

// unlock releases the mutex and wakes a waiter, if any.
func (m *ctxMutex) unlock() {
	m.held.Store(false)
	m.passWake()
}

// passWake wakes one waiter if there is one and no wake is pending.
func (m *ctxMutex) passWake() {
	if m.waiters.Load() > 0 && !m.held.Load() {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// waitErr is the error of a call whose context ended while it waited for a
// shard that another call held: like a Redis driver's call waiting on a busy
// server, a passed deadline is ErrUnavailable and context.DeadlineExceeded, a
// cancellation is context.Canceled alone.
func waitErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("memstore: cancelled while waiting for a shard another call holds: %w", err)
	}
	return fmt.Errorf("%w: memstore: waiting for a shard another call holds: %w", store.ErrUnavailable, err)
}

// lruList is a list.List that can tell, without its lock, whether an
// element is its last (the most recently used key): touching the key that
// was used last, a hot key's common case, then takes no lock over the
// whole store.
type lruList struct {
	l    list.List
	back atomic.Pointer[list.Element] // l.Back(), stored under lruMu
}

func (q *lruList) Init()                       { q.l.Init() }
func (q *lruList) Front() *list.Element        { return q.l.Front() }
func (q *lruList) isBack(e *list.Element) bool { return q.back.Load() == e }

func (q *lruList) PushBack(v any) *list.Element {
	e := q.l.PushBack(v)
	q.back.Store(e)
	return e
}

func (q *lruList) MoveToBack(e *list.Element) {
	q.l.MoveToBack(e)
	q.back.Store(e)
}

func (q *lruList) Remove(e *list.Element) {
	q.l.Remove(e)
	q.back.Store(q.l.Back())
}

// lruItem is what Store.lru holds: where to find a key with a TTL.
type lruItem struct {
	shard *shard
	key   string
}

// Store is the in-memory driver. It implements store.Store, store.Scanner,
// store.StatsReporter, store.UsageReporter and store.Int64Updater. It is
// safe for concurrent use.
type Store struct {
	shards     [shardCount]shard
	closing    chan struct{} // closed by Close: calls waiting for a shard give up
	clock      Clock
	maxEntries int64
	maxBytes   int64
	capped     bool // maxEntries or maxBytes set: keys with a TTL are kept in LRU order for eviction

	// capMu is held, in a capped store, for every change to keys and bytes
	// together with the change to the data and the LRU list it counts, so
	// that making room sees them agree, and checks, evicts and adds in one
	// step. A store without a cap keeps no LRU list and takes neither
	// capMu nor lruMu.
	capMu sync.Mutex
	keys  atomic.Int64
	bytes atomic.Int64

	// Lock order: a shard, capMu, lruMu, then other shards with TryLock only.
	// No call waits for a shard while it holds another.
	lruMu sync.Mutex
	lru   lruList // keys with a TTL, least recently used at the front

	waitEnd atomic.Pointer[waitDeadline] // see waitUntil

	g         drivercore.Gate // closed flag, counters, the checks every call starts with
	evictions atomic.Uint64
	expired   drivercore.Counter // every expired key found: a hot-path count (a spread of short-lived rate-limit buckets)
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Scanner       = (*Store)(nil)
	_ store.StatsReporter = (*Store)(nil)
)

// New returns an empty Store; nil opts is valid.
func New(opts *Options) *Store {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{clock: opts.Clock, maxEntries: int64(opts.MaxEntries), maxBytes: opts.MaxBytes, closing: make(chan struct{})}
	s.capped = s.maxEntries != 0 || s.maxBytes != 0
	if s.clock == nil {
		s.clock = newSystemClock()
	}
	for i := range s.shards {
		s.shards[i].data = map[string]*entry{}
		s.shards[i].mu = newCtxMutex()
	}
	s.lru.Init()
	return s
}

func (s *Store) shardOf(key string) *shard {
	return &s.shards[store.Slot(key)%shardCount]
}

// do runs fn on a view of keys' shard under its lock and commits the view's
// writes if fn succeeds. It makes the checks every call starts with.
func (s *Store) do(ctx context.Context, keys []string, fn func(v *view) error) error {
	if err := s.g.Begin(ctx, keys...); err != nil {
		return err
	}
	// Calls without keys (MGet(), Delete(), a script without keys) touch no
	// shard's data; the lock of the shard of "" keeps them atomic. They may
	// touch no key either: "" is not in their allowed keys.
	sh := s.shardOf("")
	if len(keys) > 0 {
		sh = s.shardOf(keys[0])
	}
	for {
		err := s.attempt(ctx, sh, keys, fn)
		if !errors.Is(err, errBusy) {
			return s.g.End(err)
		}
		if err := s.evictWaiting(ctx, keys); err != nil {
			return s.g.End(err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// attempt runs fn once under sh's lock and commits its writes.
func (s *Store) attempt(ctx context.Context, sh *shard, keys []string, fn func(v *view) error) error {
	if err := sh.mu.lock(ctx, s.closing); err != nil {
		return err
	}
	defer sh.mu.unlock()
	v := &view{s: s, sh: sh, now: s.clock.Now(), allowed: keys, writes: map[string]*entry{}}
	if err := fn(v); err != nil {
		return err
	}
	return v.commit()
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (val []byte, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { val, err = v.Get(key); return err })
	return val, err
}

// MGet implements store.Store.
func (s *Store) MGet(ctx context.Context, keys ...string) (vals [][]byte, err error) {
	err = s.do(ctx, keys, func(v *view) error { vals, err = v.MGet(keys...); return err })
	return vals, err
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return s.do(ctx, []string{key}, func(v *view) error { return v.Set(key, val, ttl) })
}

// SetNX implements store.Store.
func (s *Store) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (ok bool, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { ok, err = v.SetNX(key, val, ttl); return err })
	return ok, err
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) (n int64, err error) {
	err = s.do(ctx, keys, func(v *view) error { n, err = v.Delete(keys...); return err })
	return n, err
}

// HGet implements store.Store.
func (s *Store) HGet(ctx context.Context, key, field string) (val []byte, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { val, err = v.HGet(key, field); return err })
	return val, err
}

// HSet implements store.Store.
func (s *Store) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	return s.do(ctx, []string{key}, func(v *view) error { return v.HSet(key, fields) })
}

// HDel implements store.Store.
func (s *Store) HDel(ctx context.Context, key string, fields ...string) (n int64, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { n, err = v.HDel(key, fields...); return err })
	return n, err
}

// HGetAll implements store.Store.
func (s *Store) HGetAll(ctx context.Context, key string) (m map[string][]byte, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { m, err = v.HGetAll(key); return err })
	return m, err
}

// IncrBy implements store.Store.
func (s *Store) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (n int64, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { n, err = v.IncrBy(key, delta, ttl); return err })
	return n, err
}

// Expire implements store.Store.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (ok bool, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { ok, err = v.Expire(key, ttl); return err })
	return ok, err
}

// TTL implements store.Store.
func (s *Store) TTL(ctx context.Context, key string) (d time.Duration, err error) {
	err = s.do(ctx, []string{key}, func(v *view) error { d, err = v.TTL(key); return err })
	return d, err
}

// Eval implements store.Store: it runs the script's Go body on a view of
// keys, under their shard's lock, and commits its writes only if it
// succeeds. The body runs again if making room for its writes had to wait
// for another shard (see the package doc).
func (s *Store) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (res store.Value, err error) {
	err = s.do(ctx, keys, func(v *view) error {
		v.now = v.now.Truncate(time.Microsecond)
		res, err = runBody(sc, v, keys, args)
		return err
	})
	return res, err
}

// runBody runs sc's Go body. A body that panics fails the call with a
// *store.ScriptError (as a Lua runtime error does on Redis) instead of
// taking the process down: none of its writes is committed, and the shard
// is released as after any error.
func runBody(sc *store.Script, v *view, keys, args []string) (res store.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = store.Value{}, &store.ScriptError{Message: fmt.Sprintf("memstore: the Go body of script %q panicked: %v", sc.Name(), r)}
		}
	}()
	return sc.Run(v, keys, args)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, nil, func(*view) error { return nil })
}

// Close implements store.Store. The data is dropped (Stats then report no
// keys). Close does not wait for calls in progress: calls waiting for a shard
// return ErrClosed, and the keys of a shard that a running call (a long
// script body) holds are dropped in the background when it lets go.
func (s *Store) Close() error {
	if !s.g.Close() {
		return nil
	}
	close(s.closing)
	for i := range s.shards {
		sh := &s.shards[i]
		if sh.mu.tryLock() {
			s.dropShard(sh)
			continue
		}
		go func() {
			sh.mu.lockWait()
			s.dropShard(sh)
		}()
	}
	return nil
}

// dropShard removes every key of sh, whose lock the caller holds, and
// unlocks it.
func (s *Store) dropShard(sh *shard) {
	defer sh.mu.unlock()
	for k, e := range sh.data {
		s.removeLocked(sh, k, e)
	}
}

// As implements store.Store: it knows **Store.
func (s *Store) As(target any) bool {
	if p, ok := target.(**Store); ok {
		*p = s
		return true
	}
	return false
}

// Stats implements store.StatsReporter.
func (s *Store) Stats() store.Stats {
	calls, errs := s.g.Counts()
	return store.Stats{
		Calls: calls, Errors: errs,
		Keys: s.keys.Load(), Bytes: s.bytes.Load(),
		Evictions: s.evictions.Load(), Expired: s.expired.Load(),
	}
}

// Scan implements store.Scanner. fn runs without any lock held.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(keys []string) error) error {
	if err := s.g.Begin(ctx); err != nil {
		return err
	}
	const batch = 256
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return s.g.End(err)
		}
		sh := &s.shards[i]
		if err := sh.mu.lock(ctx, s.closing); err != nil {
			return s.g.End(err)
		}
		now := s.clock.Now()
		var keys []string
		for k, e := range sh.data {
			if strings.HasPrefix(k, prefix) && !expired(e, now) {
				keys = append(keys, k)
			}
		}
		sh.mu.unlock()
		for len(keys) > 0 {
			n := min(batch, len(keys))
			if err := fn(keys[:n]); err != nil {
				return s.g.End(err)
			}
			keys = keys[n:]
		}
	}
	return nil
}

// expired reports whether e has expired at now: at its expiry instant it
// is gone, as on miniredis, so that a TTL read from a live key is never
// zero (store.TTL's 0 means "no expiry") and a script that keeps a time in
// a key's expiry (ratelimit's whole-millisecond GCRA) sees an empty bucket
// at the instant the bucket empties. Redis keeps a key through the
// millisecond of its expiry (PTTL 0), the same instant at millisecond
// resolution.
func expired(e *entry, now time.Time) bool {
	return !e.expireAt.IsZero() && !now.Before(e.expireAt)
}

// removeLocked deletes key from sh (whose lock the caller holds) and
// accounts for it.
func (s *Store) removeLocked(sh *shard, key string, e *entry) {
	if !s.capped {
		s.dropLocked(sh, key, e) // nothing to keep in step with eviction
		return
	}
	s.capMu.Lock()
	defer s.capMu.Unlock()
	s.dropLocked(sh, key, e)
}

// dropLocked is removeLocked for a caller that holds capMu as well.
func (s *Store) dropLocked(sh *shard, key string, e *entry) {
	delete(sh.data, key)
	s.keys.Add(-1)
	s.bytes.Add(-e.size(key))
	if e.lru != nil {
		s.lruMu.Lock()
		s.lru.Remove(e.lru)
		s.lruMu.Unlock()
		e.lru = nil
	}
}

// evict removes key from sh to make room, counting it as expired if it was.
// The caller holds sh's lock and capMu.
func (s *Store) evict(sh *shard, key string, e *entry, now time.Time) {
	s.dropLocked(sh, key, e)
	if expired(e, now) {
		s.expired.Add(1)
	} else {
		s.evictions.Add(1)
	}
}

// touch marks e, a key with a TTL, as just used.
func (s *Store) touch(e *entry) {
	if e.lru == nil || s.lru.isBack(e.lru) {
		return // no TTL, or already the most recently used: a hot key takes no global lock
	}
	s.lruMu.Lock()
	s.lru.MoveToBack(e.lru)
	s.lruMu.Unlock()
}

// errBusy says that room can be made only by evicting keys from a shard
// another call holds. It never leaves the package: do retries.
var errBusy = errors.New("memstore: an eviction victim's shard is busy")

// makeRoom adds dKeys and dBytes to the accounting and runs apply, first
// evicting keys with a TTL that are not in keep if the cap requires it, least
// recently used first. It evicts all it needs or nothing: ErrFull when too
// little can be evicted, errBusy when enough could be but some of it is in a
// shard another call holds. The caller holds own's lock. apply runs in the
// same step, so that no call sees the keys counted but not yet evictable.
func (s *Store) makeRoom(own *shard, keep []string, dKeys, dBytes int64, now time.Time, apply func()) error {
	if !s.capped {
		// Without a cap there is no room to make: the counters are atomic,
		// and no lock over the whole store is taken.
		s.keys.Add(dKeys)
		s.bytes.Add(dBytes)
		apply()
		return nil
	}
	s.capMu.Lock()
	defer s.capMu.Unlock()
	keys, bytes := s.keys.Load(), s.bytes.Load()
	needKeys, needBytes := excess(keys+dKeys, s.maxEntries), excess(bytes+dBytes, s.maxBytes)
	if needKeys > 0 || needBytes > 0 {
		if needKeys > keys || needBytes > bytes {
			return s.full(dKeys, dBytes) // would not fit in an empty store
		}
		victims, locked, busy := s.pickVictims(own, keep, needKeys, needBytes)
		switch {
		case victims == nil && busy:
			return errBusy
		case victims == nil:
			return s.full(dKeys, dBytes)
		}
		for _, vi := range victims {
			s.evict(vi.sh, vi.key, vi.e, now)
		}
		for _, sh := range locked {
			sh.mu.unlock()
		}
	}
	s.keys.Add(dKeys)
	s.bytes.Add(dBytes)
	apply()
	return nil
}

func excess(n, limit int64) int64 {
	if limit == 0 {
		return 0
	}
	return n - limit
}

func (s *Store) full(dKeys, dBytes int64) error {
	return fmt.Errorf("%w: %d keys and %d bytes in use, %+d keys and %+d bytes do not fit",
		store.ErrFull, s.keys.Load(), s.bytes.Load(), dKeys, dBytes)
}

type victim struct {
	sh  *shard
	key string
	e   *entry
}

// pickVictims returns the least recently used keys with a TTL, outside keep,
// whose eviction frees needKeys keys and needBytes bytes, and the shards
// other than own it locked to hold them; the caller evicts them and unlocks
// the shards. When there are not enough, it returns no victims, holds no
// lock, and reports whether some were passed over because their shard was
// busy.
func (s *Store) pickVictims(own *shard, keep []string, needKeys, needBytes int64) (victims []victim, locked []*shard, busy bool) {
	s.lruMu.Lock()
	defer s.lruMu.Unlock()
	for el := s.lru.Front(); el != nil && (needKeys > 0 || needBytes > 0); el = el.Next() {
		it := el.Value.(lruItem)
		if slices.Contains(keep, it.key) {
			continue
		}
		if it.shard != own && !slices.Contains(locked, it.shard) {
			if !it.shard.mu.tryLock() {
				busy = true
				continue
			}
			locked = append(locked, it.shard)
		}
		e := it.shard.data[it.key]
		victims = append(victims, victim{it.shard, it.key, e})
		needKeys--
		needBytes -= e.size(it.key)
	}
	if needKeys <= 0 && needBytes <= 0 {
		return victims, locked, false
	}
	for _, sh := range locked {
		sh.mu.unlock()
	}
	return nil, nil, busy
}

// evictWaiting evicts the least recently used key with a TTL outside keep,
// waiting for its shard (or until ctx is done or the store closes). The
// caller holds no shard, so waiting cannot deadlock.
func (s *Store) evictWaiting(ctx context.Context, keep []string) error {
	s.lruMu.Lock()
	el := s.lru.Front()
	for el != nil && slices.Contains(keep, el.Value.(lruItem).key) {
		el = el.Next()
	}
	if el == nil {
		s.lruMu.Unlock()
		return nil
	}
	it := el.Value.(lruItem)
	s.lruMu.Unlock()
	if err := it.shard.mu.lock(ctx, s.closing); err != nil {
		return err
	}
	defer it.shard.mu.unlock()
	s.capMu.Lock()
	defer s.capMu.Unlock()
	// Still a key with a TTL under that element? It may have been used since,
	// but evicting it anyway guarantees progress.
	if e := it.shard.data[it.key]; e != nil && e.lru == el {
		s.evict(it.shard, it.key, e, s.clock.Now())
	}
	return nil
}
