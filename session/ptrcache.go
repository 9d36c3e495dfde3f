package session

import (
	"encoding/binary"
	"sync"

	"github.com/karat-go/karat/internal/sessionrec"
)

// ptrCache remembers, in this process, which session a token's HMAC points
// to, so that a validation reads only the record. It is safe however stale
// it gets: a pointer never changes, it is only deleted, and the record,
// which Validate always reads, holds the HMACs it accepts; an entry whose
// record rejects the token is dropped. It is sharded, and bounded: a shard
// that reaches its share of the capacity is emptied (a miss only costs one
// read more).
type ptrCache struct {
	perShard int
	shards   [ptrShards]ptrShard
}

const ptrShards = 32

type ptrShard struct {
	mu sync.RWMutex
	m  map[[64]byte]target
}

// target is where a pointer leads: the session's id and user, its shard and
// its record's key (kept so that a validation builds no key).
type target struct {
	sessionrec.Pointer
	sh  *shard
	rec string
}

func newPtrCache(capacity int) *ptrCache {
	if capacity <= 0 {
		return nil
	}
	c := &ptrCache{perShard: max(1, capacity/ptrShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[64]byte]target)
	}
	return c
}

// shard picks a shard from the HMAC's hex digits, which are uniform.
func (c *ptrCache) shard(h *[64]byte) *ptrShard {
	return &c.shards[binary.LittleEndian.Uint64(h[:8])%ptrShards]
}

func (c *ptrCache) get(h *[64]byte) (target, bool) {
	if c == nil {
		return target{}, false
	}
	sh := c.shard(h)
	sh.mu.RLock()
	p, ok := sh.m[*h]
	sh.mu.RUnlock()
	return p, ok
}

func (c *ptrCache) put(h *[64]byte, p target) {
	if c == nil {
		return
	}
	sh := c.shard(h)
	sh.mu.Lock()
	if len(sh.m) >= c.perShard {
		clear(sh.m)
	}
	sh.m[*h] = p
	sh.mu.Unlock()
}

func (c *ptrCache) drop(h *[64]byte) {
	if c == nil {
		return
	}
	sh := c.shard(h)
	sh.mu.Lock()
	delete(sh.m, *h)
	sh.mu.Unlock()
}

// len returns how many entries the cache holds.
func (c *ptrCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
