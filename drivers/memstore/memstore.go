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
//     keys of its shard.
//   - A hard cap on keys (MaxEntries) and on bytes (MaxBytes) is never
//     exceeded. To make room, only keys that carry a TTL are evicted, least
//     recently used first (reads and writes count as use); a key without TTL
//     (a revocation marker, a limiter key) is never evicted silently: the
//     write that does not fit is refused with store.ErrFull, having written
//     nothing. LRU order is global; a victim in another shard whose lock is
//     busy at that instant is passed over for the next oldest.
//   - Values are copied in and out.
package memstore

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/internal/drivercore"
	"github.com/karat-go/karat/store"
)

// Clock is where the store reads time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

// Now returns the machine's time.
func (systemClock) Now() time.Time { return time.Now() }

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
)

type kind uint8

const (
	kindString kind = iota + 1
	kindHash
)

type entry struct {
	kind     kind
	str      []byte
	hash     map[string][]byte
	expireAt time.Time     // zero: no expiry
	lru      *list.Element // in Store.lru when the entry has a TTL
}

func (e *entry) size(key string) int64 {
	n := int64(len(key) + EntryOverhead + len(e.str))
	for f, v := range e.hash {
		n += int64(len(f) + len(v))
	}
	return n
}

type shard struct {
	mu   sync.Mutex
	data map[string]*entry
}

// lruItem is what Store.lru holds: where to find a key with a TTL.
type lruItem struct {
	shard *shard
	key   string
}

// Store is the in-memory driver. It implements store.Store, store.Scanner
// and store.StatsReporter. It is safe for concurrent use.
type Store struct {
	shards     [shardCount]shard
	clock      Clock
	maxEntries int64
	maxBytes   int64

	capMu sync.Mutex // makes the cap check and the accounting one step
	keys  atomic.Int64
	bytes atomic.Int64

	lruMu sync.Mutex // lock order: a shard, then lruMu, then (TryLock only) another shard
	lru   list.List  // keys with a TTL, least recently used at the front

	g         drivercore.Gate // closed flag, counters, the checks every call starts with
	evictions atomic.Uint64
	expired   atomic.Uint64
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
	s := &Store{clock: opts.Clock, maxEntries: int64(opts.MaxEntries), maxBytes: opts.MaxBytes}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	for i := range s.shards {
		s.shards[i].data = map[string]*entry{}
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
	if len(keys) == 0 {
		// Calls without keys (MGet(), Delete(), a script without keys)
		// touch no shard's data; any shard's lock keeps them atomic.
		keys = []string{""}
	}
	sh := s.shardOf(keys[0])
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := &view{s: s, sh: sh, now: s.clock.Now(), allowed: keys, writes: map[string]*entry{}}
	if err := fn(v); err != nil {
		return s.g.End(err)
	}
	return s.g.End(v.commit())
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
// succeeds.
func (s *Store) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (res store.Value, err error) {
	err = s.do(ctx, keys, func(v *view) error {
		v.now = v.now.Truncate(time.Microsecond)
		res, err = sc.Run(v, keys, args)
		return err
	})
	return res, err
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, nil, func(*view) error { return nil })
}

// Close implements store.Store. The data is dropped.
func (s *Store) Close() error {
	if !s.g.Close() {
		return nil
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.data = map[string]*entry{}
		sh.mu.Unlock()
	}
	return nil
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
		now := s.clock.Now()
		var keys []string
		sh.mu.Lock()
		for k, e := range sh.data {
			if strings.HasPrefix(k, prefix) && !expired(e, now) {
				keys = append(keys, k)
			}
		}
		sh.mu.Unlock()
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

func expired(e *entry, now time.Time) bool {
	return !e.expireAt.IsZero() && now.After(e.expireAt)
}

// removeLocked deletes key from sh (whose lock the caller holds) and
// accounts for it.
func (s *Store) removeLocked(sh *shard, key string, e *entry) {
	delete(sh.data, key)
	s.capMu.Lock()
	s.keys.Add(-1)
	s.bytes.Add(-e.size(key))
	s.capMu.Unlock()
	if e.lru != nil {
		s.lruMu.Lock()
		s.lru.Remove(e.lru)
		s.lruMu.Unlock()
		e.lru = nil
	}
}

// touch marks e, a key with a TTL, as just used.
func (s *Store) touch(e *entry) {
	if e.lru == nil {
		return
	}
	s.lruMu.Lock()
	s.lru.MoveToBack(e.lru)
	s.lruMu.Unlock()
}

// reserve accounts for dKeys keys and dBytes bytes if the cap allows it.
func (s *Store) reserve(dKeys, dBytes int64) bool {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if dKeys > 0 && s.maxEntries > 0 && s.keys.Load()+dKeys > s.maxEntries ||
		dBytes > 0 && s.maxBytes > 0 && s.bytes.Load()+dBytes > s.maxBytes {
		return false
	}
	s.keys.Add(dKeys)
	s.bytes.Add(dBytes)
	return true
}

// evictOne evicts the least recently used key with a TTL that is not in
// keep, from own (whose lock the caller holds) or from a shard whose lock is
// free. It reports whether it evicted one.
func (s *Store) evictOne(own *shard, keep map[string]*entry) bool {
	s.lruMu.Lock()
	for el := s.lru.Front(); el != nil; el = el.Next() {
		it := el.Value.(lruItem)
		if it.shard == own {
			if _, kept := keep[it.key]; kept {
				continue
			}
		} else if !it.shard.mu.TryLock() {
			continue
		}
		e := it.shard.data[it.key]
		s.lru.Remove(el)
		s.lruMu.Unlock()
		e.lru = nil
		s.removeLocked(it.shard, it.key, e)
		if it.shard != own {
			it.shard.mu.Unlock()
		}
		s.evictions.Add(1)
		return true
	}
	s.lruMu.Unlock()
	return false
}
