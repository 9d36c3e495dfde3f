package cache

import (
	"sync"
	"time"
)

// local is the in-process cache of decoded values. An entry lives at most
// life (half of MaxStale) of real time after it was read from the store,
// and the store read itself was at most the other half old, so a value
// served from here is never older than MaxStale. Writes and invalidations
// made through the same Cache drop the entries they touch after the store
// has applied them, and bump seq, so a read that began before such a write
// cannot install what it read (read-your-writes).
type local[T any] struct {
	mu   sync.RWMutex
	seq  uint64
	max  int
	n    int
	life time.Duration
	m    map[string]map[string]*localEntry[T] // tenant → key → entry
}

type localEntry[T any] struct {
	val        T
	negative   bool
	freshUntil int64 // Unix µs, on the cache's clock
	delta      int64
	expires    time.Time // real time
}

func newLocal[T any](max int, life time.Duration) *local[T] {
	if max <= 0 || life <= 0 {
		return nil
	}
	return &local[T]{max: max, life: life, m: map[string]map[string]*localEntry[T]{}}
}

func (l *local[T]) get(tenant, key string) *localEntry[T] {
	if l == nil {
		return nil
	}
	l.mu.RLock()
	e := l.m[tenant][key]
	l.mu.RUnlock()
	if e == nil || time.Now().After(e.expires) {
		return nil
	}
	return e
}

// begin returns the sequence number a read must present to install.
func (l *local[T]) begin() uint64 {
	if l == nil {
		return 0
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.seq
}

func (l *local[T]) install(tenant, key string, e *localEntry[T], seq uint64) {
	if l == nil {
		return
	}
	e.expires = time.Now().Add(l.life)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq != seq {
		return
	}
	byKey := l.m[tenant]
	if byKey == nil {
		byKey = map[string]*localEntry[T]{}
		l.m[tenant] = byKey
	}
	if _, ok := byKey[key]; !ok {
		if l.n >= l.max {
			l.evictOne()
		}
		l.n++
	}
	byKey[key] = e
}

// evictOne drops an arbitrary entry (map order): cheap, and good enough for
// a cache whose entries live a fraction of a second anyway.
func (l *local[T]) evictOne() {
	for t, byKey := range l.m {
		for k := range byKey {
			delete(byKey, k)
			l.n--
			if len(byKey) == 0 {
				delete(l.m, t)
			}
			return
		}
	}
}

func (l *local[T]) dropKey(tenant, key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if byKey := l.m[tenant]; byKey != nil {
		if _, ok := byKey[key]; ok {
			delete(byKey, key)
			l.n--
		}
	}
}

func (l *local[T]) dropTenant(tenant string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.n -= len(l.m[tenant])
	delete(l.m, tenant)
}

func (l *local[T]) dropAll() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.n = 0
	l.m = map[string]map[string]*localEntry[T]{}
}
