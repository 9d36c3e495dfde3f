package rueidisstore

import (
	"context"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// CachedStore is a Store with client-side caching: it adds GetCached
// (store.CachedReader) and counts CacheHits and CacheMisses in Stats.
type CachedStore struct {
	*Store
	maxStale time.Duration
}

// GetCached implements store.CachedReader: Get that may answer from rueidis's
// client-side cache, with a value never older than maxStale. maxStale is
// clamped to Options.MaxStale; maxStale <= 0 asks the server.
//
// Redis invalidates cached keys, but its invalidation can come late (it
// follows the writer's reply) or never (a silent partition keeps the
// connection, and so the cache, alive). So the bound is enforced by time:
//
//   - The client-side TTL given to rueidis is maxStale less staleMargin
//     (1ms). rueidis keeps the TTL of whichever call filled an entry, and
//     that call may have asked for a longer maxStale than this one; but no
//     call ever gives a TTL longer than the window, the largest TTL this
//     store has given. An entry that expires at CachePXAT was therefore
//     filled no earlier than CachePXAT - window.
//   - On every hit the clock is read after the call and the entry's age, at
//     most window - (CachePXAT - now), is checked against maxStale; a hit
//     whose age may exceed maxStale is read from the server instead. An
//     earlier version skipped the clock read when this call's TTL was the
//     window, trusting rueidis's own expiry check inside the call plus
//     staleMargin for the rest of it; under load the rest of the call took
//     longer than the margin and a 302 ms old value was served with maxStale
//     300 ms (TestPartition), so the read (about 50 ns, a sixth of a hit)
//     stays: the bound is enforced, not hoped for.
//   - Read-your-writes: every key this store writes is remembered for the
//     window, and read from the server while remembered. An entry filled
//     before the write has expired by the time the window has passed, even
//     if the invalidation never arrives.
//
// A maxStale of staleMargin or less reads from the server.
//
// Stores that share one rueidis.Client share its cache but not their
// windows: give them the same Options.MaxStale, or a store may accept an
// entry another filled with a longer TTL as younger than it is.
func (s *CachedStore) GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error) {
	str, err := s.getCached(ctx, key, maxStale)
	if err != nil {
		return nil, err
	}
	return bytesOf(str), nil
}

// GetCachedString implements store.CachedStringReader: GetCached returning
// the value as a string, which on a cache hit shares its memory with
// rueidis's cache instead of being copied:
// a string cannot be changed, so the caller cannot change the cache through
// it. GetCached must copy, since the caller owns the []byte it returns; that
// copy is most of what a hit costs over rueidis's own DoCache (see
// BENCHMARKS.md). Same bounds, errors and counting as GetCached.
func (s *CachedStore) GetCachedString(ctx context.Context, key string, maxStale time.Duration) (string, error) {
	return s.getCached(ctx, key, maxStale)
}

// getCached is GetCachedString. The hit path is kept free of calls that
// are not needed: errors and misses leave it through functions of their own.
func (s *CachedStore) getCached(ctx context.Context, key string, maxStale time.Duration) (string, error) {
	// A hit is counted once, in hits (Stats adds them to Calls); every
	// other outcome is counted as a call by the gate.
	if err := s.g.CheckKey(ctx, key); err != nil {
		s.g.CountCall()
		return "", err
	}
	maxStale = min(maxStale, s.maxStale)
	if maxStale <= staleMargin {
		s.miss()
		return s.getString(ctx, key)
	}
	ttl := maxStale - staleMargin
	// Widen the window before the call, so that an entry this call fills
	// never has a TTL larger than the window a later hit is checked with.
	s.writes.widen(ttl)
	resp := s.c.DoCache(ctx, s.cmds.get(s.c, key), ttl)
	// The write log is checked after the call, hit or miss (a miss may have
	// joined a fill that was sent before this store's write): a key written
	// within the window is read from the server. The clock is read at most
	// once, after the call, and only when needed: the write-log check needs
	// it only for a key whose filter slot is set.
	var now int64 // the log's time; 0: not read yet
	if s.writes.recent(key, &now) {
		s.miss()
		return s.getString(ctx, key)
	}
	if !resp.IsCacheHit() {
		s.miss()
		return s.stringReply(ctx, resp)
	}
	// The bound is enforced on every hit with the clock read after the call,
	// not left to rueidis's own expiry check inside it: on a loaded machine
	// the rest of the call can take longer than any fixed margin (a
	// partitioned reader served a 302 ms old value with maxStale 300 ms).
	// The age is pessimistic: the window is loaded after the call, and
	// whichever call filled the entry had widened it by then.
	if now == 0 {
		now = s.writes.now()
	}
	if age := max(s.writes.width(), ttl) - time.Duration(resp.CachePXAT()*int64(time.Millisecond)-s.writes.wall(now)); age > maxStale {
		s.miss()
		return s.getString(ctx, key)
	}
	// A cached reply is a string or a nil (a missing key): ToString on the
	// message, not through stringReply, which copies the whole result.
	str, err := resp.ToString()
	if err != nil {
		return "", s.hitErr(ctx, resp, err)
	}
	s.hits.Add(1)
	return str, nil
}

// hitErr counts and maps the error of a cache hit (a cached nil: the key
// is missing).
func (s *CachedStore) hitErr(ctx context.Context, resp rueidis.RedisResult, err error) error {
	s.hits.Add(1)
	return s.g.End(mapErr(ctx, resp, err, false))
}

// cmdTable holds pinned GET commands (rueidis's Pin: never recycled, so
// reusable by any number of calls at once) for keys GetCached has read, so
// that a hit on a hot key does not build its command again: rueidis's
// builder computes the key's cluster slot, a CRC16 taken byte by byte, for
// every command it builds, which cost about a sixth of a hit. The table is
// direct-mapped (one command per slot, picked by a hash of the key) and
// bounded: a key whose slot holds another key builds its command as before,
// and takes the slot over with a chance of 1 in cmdTakeOver, so that two
// hot keys sharing a slot do not allocate on every call, and a stream of
// cold keys costs an allocation once in cmdTakeOver calls.
type cmdTable struct {
	seed  maphash.Seed
	slots [cmdSlots]atomic.Pointer[pinnedGet]
}

const (
	cmdSlots    = 8192
	cmdTakeOver = 32
)

type pinnedGet struct {
	key string
	cmd rueidis.Cacheable
}

func newCmdTable() *cmdTable { return &cmdTable{seed: maphash.MakeSeed()} }

// get returns the GET command of key, cacheable, from the table or built.
// A key may sit in either slot of its pair (two-way: 1,024 hot keys in
// 8,192 direct-mapped slots collide in about 60 pairs, which then build
// their commands on most calls).
func (t *cmdTable) get(c rueidis.Client, key string) rueidis.Cacheable {
	i := maphash.String(t.seed, key) % cmdSlots
	slot := &t.slots[i]
	p := slot.Load()
	if p != nil && p.key == key {
		return p.cmd
	}
	other := &t.slots[i^1]
	q := other.Load()
	if q != nil && q.key == key {
		return q.cmd
	}
	if p != nil && q == nil {
		slot, p = other, nil // an empty slot of the pair is taken at once
	}
	return t.build(c, key, slot, p)
}

// build builds key's command and may keep it in slot (now holding p).
func (t *cmdTable) build(c rueidis.Client, key string, slot *atomic.Pointer[pinnedGet], p *pinnedGet) rueidis.Cacheable {
	if p != nil && rand.Uint32()%cmdTakeOver != 0 {
		return c.B().Get().Key(key).Cache()
	}
	// A copy of the key: the caller's string may share the memory of a
	// much larger one, which the table would otherwise keep alive.
	key = strings.Clone(key)
	n := &pinnedGet{key: key, cmd: c.B().Get().Key(key).Cache().Pin()}
	slot.CompareAndSwap(p, n) // a racing call may have filled it: either is fine
	return n.cmd
}

// staleMargin is kept off the TTL that GetCached gives rueidis: the bound
// is checked inside the call, and the margin covers the rest of it.
const staleMargin = time.Millisecond

// miss counts a GetCached call that asks the server.
func (s *CachedStore) miss() {
	s.g.CountCall()
	s.misses.Add(1)
}

// writeLog remembers when this store last wrote each key, for as long as the
// window: the largest maxStale GetCached has been given. It is sharded to
// keep writers from contending on one lock, and bounded: once per window a
// writer sweeps out the keys written before the window, and a shard that
// holds maxShardKeys keys forgets them all and treats every key it holds as
// written now, which only sends more reads to the server.
//
// A store that has written nothing within the window (as of the last sweep)
// answers without hashing the key. In front of the shards, a filter of atomic times (one slot per hash of a
// key, holding the latest write of any key that hashes there) answers "not
// written within the window" without a lock or, for a key whose slot is
// empty, a clock read: the common answer on the read path. A slot can only
// overstate a key's last write (other keys share it), never understate it,
// so the filter never hides a write; a recent slot sends the question on to
// the exact record in the shard. When two writes of one key race, both the
// slot and the shard keep the later time.
type writeLog struct {
	// Read on every GetCached.
	epoch   time.Time    // times are nanoseconds since epoch (+1, so 0 is "never"), on the monotonic clock
	window  atomic.Int64 // nanoseconds
	seed    maphash.Seed
	offset  atomic.Int64 // wall clock (Unix nanoseconds) minus the log's time, as of checked
	checked atomic.Int64 // the log's time when offset was last read
	_       [64]byte     // written on every write, below: kept off the readers' cache line
	swept   atomic.Int64 // time of the last sweep
	last    atomic.Int64 // time of the latest write noted (0: none since the last sweep found all old)
	_       [64]byte
	filter  [filterSlots]atomic.Int64
	shards  [writeShards]writeShard
}

const (
	writeShards = 64
	filterSlots = 4096
)

// maxShardKeys bounds a shard; a variable so that tests can lower it.
var maxShardKeys = 1 << 14

type writeShard struct {
	mu  sync.Mutex
	at  map[string]int64 // key → time of its last write
	all int64            // every key of the shard counts as written at this time (0: never)
}

func newWriteLog() *writeLog {
	l := &writeLog{epoch: time.Now(), seed: maphash.MakeSeed()}
	l.offset.Store(l.epoch.UnixNano() - 1)
	l.checked.Store(1)
	for i := range l.shards {
		l.shards[i].at = make(map[string]int64)
	}
	return l
}

// since converts t to the log's time.
func (l *writeLog) since(t time.Time) int64 { return int64(t.Sub(l.epoch)) + 1 }

// now reads the log's time: one read of the monotonic clock. time.Now reads
// the wall clock too, and on a virtual machine each read costs tens of
// nanoseconds (kvm-clock: about 50 ns), a sixth of a cache hit.
func (l *writeLog) now() int64 { return int64(time.Since(l.epoch)) + 1 }

// wallRecheck is how often wall re-reads the wall clock.
const wallRecheck = 10 * time.Millisecond

// wall returns the wall clock (Unix nanoseconds) at the log's time t, for
// comparing with rueidis's CachePXAT, which rueidis takes from the wall
// clock. It is t plus the offset between the two clocks, re-read with
// time.Now once per wallRecheck, so that a hit reads one clock, not two.
// A step of the wall clock is therefore seen up to wallRecheck late: a
// step back makes entries look older than they are for that long (more
// reads go to the server), a step forward makes them look younger by at
// most the step for that long. rueidis itself compares PXAT with the wall
// clock, so a step misleads its own expiry the same way, for longer.
func (l *writeLog) wall(t int64) int64 {
	if c := l.checked.Load(); t-c >= int64(wallRecheck) && l.checked.CompareAndSwap(c, t) {
		now := time.Now()
		l.offset.Store(now.UnixNano() - l.since(now))
	}
	return t + l.offset.Load()
}

// slots returns key's shard and filter slot.
func (l *writeLog) slots(key string) (*writeShard, *atomic.Int64) {
	h := maphash.String(l.seed, key)
	return &l.shards[h%writeShards], &l.filter[(h/writeShards)%filterSlots]
}

// widen makes the window at least d.
func (l *writeLog) widen(d time.Duration) {
	for {
		w := l.window.Load()
		if w >= int64(d) || l.window.CompareAndSwap(w, int64(d)) {
			return
		}
	}
}

// width returns the window.
func (l *writeLog) width() time.Duration { return time.Duration(l.window.Load()) }

// storeMax makes v at least t.
func storeMax(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if old >= t || v.CompareAndSwap(old, t) {
			return
		}
	}
}

// note records that keys were just written. Before any GetCached with a
// maxStale > 0 the window is 0 and there is nothing to record: no entry
// filled before the write can exist.
func (l *writeLog) note(keys []string) { l.noteAt(keys, l.now()) }

// noteAt is note with the clock read by the caller: a write that read it
// earlier may get here later.
func (l *writeLog) noteAt(keys []string, now int64) {
	window := l.window.Load()
	if window == 0 {
		return
	}
	if swept := l.swept.Load(); now-swept >= window && l.swept.CompareAndSwap(swept, now) {
		l.sweep(now, window)
	}
	storeMax(&l.last, now)
	for _, k := range keys {
		sh, slot := l.slots(k)
		storeMax(slot, now)
		sh.mu.Lock()
		if len(sh.at) >= maxShardKeys {
			clear(sh.at)
			sh.all = max(sh.all, now)
		}
		// Keep the later time: a racing write may have stored one already.
		if at, ok := sh.at[k]; !ok || at < now {
			sh.at[k] = now
		}
		sh.mu.Unlock()
	}
}

// sweep forgets the keys written before the window, and empties the filter
// slots whose latest write is older than the window.
func (l *writeLog) sweep(now, window int64) {
	if last := l.last.Load(); now-last >= window {
		l.last.CompareAndSwap(last, 0) // a write that raced in keeps it
	}
	for i := range l.filter {
		if at := l.filter[i].Load(); at != 0 && now-at >= window {
			l.filter[i].CompareAndSwap(at, 0) // a write that raced in keeps its slot
		}
	}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, at := range sh.at {
			if now-at >= window {
				delete(sh.at, k)
			}
		}
		sh.mu.Unlock()
	}
}

// recent reports whether key was written within the window. now is the
// caller's reading of the log's time, read here if it is zero and needed.
func (l *writeLog) recent(key string, now *int64) bool {
	if l.last.Load() == 0 { // nothing written since a sweep found all writes old: no hash
		return false
	}
	sh, slot := l.slots(key)
	last := slot.Load()
	if last == 0 {
		return false
	}
	if *now == 0 {
		*now = l.now()
	}
	t, window := *now, l.window.Load()
	if t-last >= window {
		return false
	}
	sh.mu.Lock()
	at, ok := sh.at[key]
	all := sh.all
	sh.mu.Unlock()
	return ok && t-at < window || all > 0 && t-all < window
}

// size returns how many keys the log holds.
func (l *writeLog) size() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.at)
		sh.mu.Unlock()
	}
	return n
}
