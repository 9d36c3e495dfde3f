package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

const memShards = 64

var memSeed = maphash.MakeSeed()

func shardOf(key string) int { return int(maphash.String(memSeed, key) % memShards) }

// blockedMemory remembers, per store key, until when (on the limiter's
// monotonic clock) a request of at least some cost is known to be denied.
// It only ever answers denials, so it cannot admit more than the store
// would. Each shard holds at most cap/memShards entries; a full shard first
// drops expired entries, then refuses to remember (which costs a round trip
// later, never a wrong answer). No sweep takes a global lock.
type blockedMemory struct {
	perShard int
	n        atomic.Int64 // entries, so that an empty memory costs a decision one load
	shards   [memShards]struct {
		mu sync.Mutex
		m  map[string]blockEntry
	}
}

type blockEntry struct {
	cost  int64
	until time.Duration
	reset time.Duration
}

func newBlockedMemory(n int) *blockedMemory {
	b := &blockedMemory{perShard: max(1, n/memShards)}
	for i := range b.shards {
		b.shards[i].m = map[string]blockEntry{}
	}
	return b
}

func (b *blockedMemory) check(key string, cost int64, now time.Duration) (retry, reset time.Duration, blocked bool) {
	sh := &b.shards[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok {
		return 0, 0, false
	}
	if now >= e.until {
		delete(sh.m, key)
		b.n.Add(-1)
		return 0, 0, false
	}
	if cost < e.cost {
		return 0, 0, false
	}
	return e.until - now, max(0, e.reset-now), true
}

func (b *blockedMemory) remember(key string, cost int64, now, until, reset time.Duration) {
	sh := &b.shards[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[key]; ok {
		// Keep the most useful entry: the smaller cost blocks more requests.
		if cost < e.cost || cost == e.cost && until > e.until {
			sh.m[key] = blockEntry{cost: cost, until: until, reset: reset}
		}
		return
	}
	if len(sh.m) >= b.perShard {
		for k, e := range sh.m {
			if e.until <= now {
				delete(sh.m, k)
				b.n.Add(-1)
			}
		}
		if len(sh.m) >= b.perShard {
			return
		}
	}
	sh.m[key] = blockEntry{cost: cost, until: until, reset: reset}
	b.n.Add(1)
}

// any reports whether the memory may hold an entry: when it does not, a
// decision skips the hash and the shard lock of check.
func (b *blockedMemory) any() bool { return b.n.Load() > 0 }

func (b *blockedMemory) forget(key string) {
	sh := &b.shards[shardOf(key)]
	sh.mu.Lock()
	if _, ok := sh.m[key]; ok {
		delete(sh.m, key)
		b.n.Add(-1)
	}
	sh.mu.Unlock()
}

// localLimiter is the in-process GCRA that FailLocal policies fall back on,
// at Policy.LocalShare of the limit and burst. Its state is per Limiter
// instance and is lost on restart: it bounds the damage of an outage, it is
// not exact across instances.
type localLimiter struct {
	perShard int
	shards   [memShards]struct {
		mu sync.Mutex
		m  map[string]time.Duration // key -> TAT on the limiter's monotonic clock
	}
}

func newLocalLimiter(n int) *localLimiter {
	l := &localLimiter{perShard: max(1, n/memShards)}
	for i := range l.shards {
		l.shards[i].m = map[string]time.Duration{}
	}
	return l
}

func (l *localLimiter) forget(key string) {
	sh := &l.shards[shardOf(key)]
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
}

// decide runs GCRA at the policy's local share; take charges when allowed.
func (l *localLimiter) decide(key string, p Policy, cost int64, now time.Duration, take bool) (allowed bool, remaining int64, retry, reset time.Duration, never bool) {
	share := p.share()
	limit := max(1, int64(math.Floor(float64(p.Limit)*share)))
	burst := max(1, int64(math.Floor(float64(p.burst())*share)))
	t := time.Duration((int64(p.Window) + limit - 1) / limit)
	tau := time.Duration(burst) * t
	if cost > burst {
		return false, 0, 0, 0, true
	}
	sh := &l.shards[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.m[key]
	if !ok || tat < now {
		tat = now
	}
	used := tat - now
	diff := used + time.Duration(cost)*t
	if diff > tau {
		return false, int64(max(0, (tau-used)/t)), diff - tau, used, false
	}
	if !take {
		return true, int64((tau - used) / t), 0, used, false
	}
	if !ok && len(sh.m) >= l.perShard {
		for k, v := range sh.m {
			if v <= now {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= l.perShard {
			// Full of live buckets: deny rather than forget one (which
			// would admit more than the share).
			return false, 0, t, 0, false
		}
	}
	sh.m[key] = now + diff
	return true, int64((tau - diff) / t), 0, diff, false
}
