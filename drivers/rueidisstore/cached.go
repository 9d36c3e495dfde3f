package rueidisstore

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
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
//   - The client-side TTL given to rueidis is maxStale. rueidis keeps the TTL
//     of whichever call filled an entry, and that call may have asked for a
//     longer maxStale than this one; but no call ever asks for more than the
//     window, the largest maxStale this store has been given. An entry that
//     expires at CachePXAT was therefore filled no earlier than CachePXAT -
//     window, and its age is at most window - (CachePXAT - now). A hit whose
//     age may exceed maxStale is read from the server instead.
//   - Read-your-writes: every key this store writes is remembered for the
//     window, and read from the server while remembered. An entry filled
//     before the write has expired by the time the window has passed, even
//     if the invalidation never arrives.
//
// Stores that share one rueidis.Client share its cache but not their
// windows: give them the same Options.MaxStale, or a store may accept an
// entry another filled with a longer TTL as younger than it is.
func (s *CachedStore) GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	if maxStale <= 0 {
		s.misses.Add(1)
		return s.get(ctx, key)
	}
	maxStale = min(maxStale, s.maxStale)
	// Widen the window before the call, so that an entry this call fills
	// never has a TTL larger than the window a later hit is checked with.
	s.writes.widen(maxStale)
	if s.writes.recent(key) {
		s.misses.Add(1)
		return s.get(ctx, key)
	}
	resp := s.c.DoCache(ctx, s.c.B().Get().Key(key).Cache(), maxStale)
	if !resp.IsCacheHit() {
		s.misses.Add(1)
		return s.bytesReply(ctx, resp)
	}
	// Load the window after the call: whichever call filled the entry had
	// widened it by then.
	if age := s.writes.width() - time.Until(time.UnixMilli(resp.CachePXAT())); age > maxStale {
		s.misses.Add(1)
		return s.get(ctx, key)
	}
	s.hits.Add(1)
	return s.bytesReply(ctx, resp)
}

// writeLog remembers when this store last wrote each key, for as long as the
// window: the largest maxStale GetCached has been given. It is sharded to
// keep writers from contending on one lock, and bounded: once per window a
// writer sweeps out the keys written before the window, and a shard that
// holds maxShardKeys keys forgets them all and treats every key it holds as
// written now, which only sends more reads to the server.
type writeLog struct {
	epoch  time.Time    // times are nanoseconds since epoch, on the monotonic clock
	window atomic.Int64 // nanoseconds
	swept  atomic.Int64 // time of the last sweep
	seed   maphash.Seed
	shards [writeShards]writeShard
}

const writeShards = 64

// maxShardKeys bounds a shard; a variable so that tests can lower it.
var maxShardKeys = 1 << 14

type writeShard struct {
	mu  sync.Mutex
	at  map[string]int64 // key → time of its last write
	all int64            // every key of the shard counts as written at this time (0: never)
}

func newWriteLog() *writeLog {
	l := &writeLog{epoch: time.Now(), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].at = make(map[string]int64)
	}
	return l
}

func (l *writeLog) now() int64 { return int64(time.Since(l.epoch)) }

func (l *writeLog) shard(key string) *writeShard {
	return &l.shards[maphash.String(l.seed, key)%writeShards]
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

// note records that keys were just written. Before any GetCached with a
// maxStale > 0 the window is 0 and there is nothing to record: no entry
// filled before the write can exist.
func (l *writeLog) note(keys []string) {
	now, window := l.now(), l.window.Load()
	if window == 0 {
		return
	}
	if swept := l.swept.Load(); now-swept >= window && l.swept.CompareAndSwap(swept, now) {
		l.sweep(now, window)
	}
	for _, k := range keys {
		sh := l.shard(k)
		sh.mu.Lock()
		if len(sh.at) >= maxShardKeys {
			clear(sh.at)
			sh.all = now
		}
		sh.at[k] = now
		sh.mu.Unlock()
	}
}

// sweep forgets the keys written before the window.
func (l *writeLog) sweep(now, window int64) {
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

// recent reports whether key was written within the window.
func (l *writeLog) recent(key string) bool {
	sh := l.shard(key)
	sh.mu.Lock()
	at, ok := sh.at[key]
	all := sh.all
	sh.mu.Unlock()
	now, window := l.now(), l.window.Load()
	return ok && now-at < window || all > 0 && now-all < window
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
