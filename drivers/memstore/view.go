package memstore

import (
	"container/list"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/karat-go/karat/store"
)

// view is one operation's window on a shard: every Store method and every
// script body works through it. Reads see the overlay of the operation's own
// writes first; commit applies the overlay.
type view struct {
	s       *Store
	sh      *shard
	now     time.Time
	allowed []string
	writes  map[string]*entry // nil entry: deleted
	order   []string          // keys in writes, in first-write order
}

var _ store.ScriptView = (*view)(nil)

// Now implements store.ScriptView.
func (v *view) Now() time.Time { return v.now }

func (v *view) check(key string) error {
	if !slices.Contains(v.allowed, key) {
		return fmt.Errorf("%w: %q was not declared", store.ErrInvalidKey, key)
	}
	return nil
}

// lookup returns the live entry of key, or nil. An expired entry found in the
// shard is removed on the spot.
func (v *view) lookup(key string) (*entry, error) {
	if err := v.check(key); err != nil {
		return nil, err
	}
	if e, ok := v.writes[key]; ok {
		return e, nil
	}
	e := v.sh.data[key]
	if e == nil {
		return nil, nil
	}
	if expired(e, v.now) {
		v.s.removeLocked(v.sh, key, e)
		v.s.expired.Add(1)
		return nil, nil
	}
	v.s.touch(e)
	e.materialize()
	return e, nil
}

func (v *view) put(key string, e *entry) {
	if _, ok := v.writes[key]; !ok {
		v.order = append(v.order, key)
	}
	v.writes[key] = e
}

func (v *view) expiry(ttl time.Duration) time.Time {
	if ttl == 0 {
		return time.Time{}
	}
	return v.now.Add(store.RoundTTL(ttl))
}

func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// Get implements store.ScriptView.
func (v *view) Get(key string) ([]byte, error) {
	e, err := v.lookup(key)
	switch {
	case err != nil:
		return nil, err
	case e == nil:
		return nil, store.ErrNotFound
	case e.kind != kindString:
		return nil, store.ErrWrongType
	}
	return clone(e.str), nil
}

// MGet implements store.ScriptView.
func (v *view) MGet(keys ...string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		e, err := v.lookup(k)
		if err != nil {
			return nil, err
		}
		if e != nil && e.kind == kindString {
			out[i] = clone(e.str)
		}
	}
	return out, nil
}

// Set implements store.ScriptView.
func (v *view) Set(key string, val []byte, ttl time.Duration) error {
	if err := store.ValidateTTL(ttl); err != nil {
		return err
	}
	if err := v.check(key); err != nil {
		return err
	}
	v.put(key, &entry{kind: kindString, str: clone(val), expireAt: v.expiry(ttl)})
	return nil
}

// SetNX implements store.ScriptView.
func (v *view) SetNX(key string, val []byte, ttl time.Duration) (bool, error) {
	if err := store.ValidateTTL(ttl); err != nil {
		return false, err
	}
	e, err := v.lookup(key)
	if err != nil || e != nil {
		return false, err
	}
	v.put(key, &entry{kind: kindString, str: clone(val), expireAt: v.expiry(ttl)})
	return true, nil
}

// Delete implements store.ScriptView.
func (v *view) Delete(keys ...string) (int64, error) {
	var n int64
	for _, k := range keys {
		e, err := v.lookup(k)
		if err != nil {
			return 0, err
		}
		if e != nil {
			n++
			v.put(k, nil)
		}
	}
	return n, nil
}

// hash returns key's hash for reading (nil if missing) or ErrWrongType.
func (v *view) hash(key string) (*entry, error) {
	e, err := v.lookup(key)
	if err != nil {
		return nil, err
	}
	if e != nil && e.kind != kindHash {
		return nil, store.ErrWrongType
	}
	return e, nil
}

// HGet implements store.ScriptView.
func (v *view) HGet(key, field string) ([]byte, error) {
	e, err := v.hash(key)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, store.ErrNotFound
	}
	val, ok := e.hash[field]
	if !ok {
		return nil, store.ErrNotFound
	}
	return clone(val), nil
}

// copyForWrite returns a copy of an entry for the overlay (a copy, so that a
// failed operation leaves the shard's entry untouched).
func (e *entry) copyForWrite() *entry {
	c := &entry{kind: e.kind, str: e.str, expireAt: e.expireAt}
	if e.hash != nil {
		c.hash = make(map[string][]byte, len(e.hash))
		for f, val := range e.hash {
			c.hash[f] = val
		}
	}
	return c
}

// HSet implements store.ScriptView.
func (v *view) HSet(key string, fields map[string][]byte) error {
	e, err := v.hash(key)
	if err != nil || len(fields) == 0 {
		return err
	}
	if e == nil {
		e = &entry{kind: kindHash, hash: map[string][]byte{}}
	} else {
		e = e.copyForWrite()
	}
	for f, val := range fields {
		e.hash[f] = clone(val)
	}
	v.put(key, e)
	return nil
}

// HDel implements store.ScriptView.
func (v *view) HDel(key string, fields ...string) (int64, error) {
	e, err := v.hash(key)
	if err != nil || e == nil {
		return 0, err
	}
	e = e.copyForWrite()
	var n int64
	for _, f := range fields {
		if _, ok := e.hash[f]; ok {
			delete(e.hash, f)
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	if len(e.hash) == 0 {
		e = nil // a hash without fields does not exist
	}
	v.put(key, e)
	return n, nil
}

// HGetAll implements store.ScriptView.
func (v *view) HGetAll(key string) (map[string][]byte, error) {
	e, err := v.hash(key)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, store.ErrNotFound
	}
	out := make(map[string][]byte, len(e.hash))
	for f, val := range e.hash {
		out[f] = clone(val)
	}
	return out, nil
}

// parseInt accepts what Redis's string2ll accepts: an optional '-', no '+',
// no leading zeros (but "0"), no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	s := string(b)
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" || len(s) > 20 || digits[0] == '0' && (len(digits) > 1 || len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// IncrBy implements store.ScriptView.
func (v *view) IncrBy(key string, delta int64, ttl time.Duration) (int64, error) {
	if err := store.ValidateTTL(ttl); err != nil {
		return 0, err
	}
	e, err := v.lookup(key)
	if err != nil {
		return 0, err
	}
	var cur int64
	var expireAt time.Time
	switch {
	case e == nil:
		expireAt = v.expiry(ttl) // created by this call: its TTL applies
	case e.kind != kindString:
		return 0, store.ErrWrongType
	default:
		n, ok := parseInt(e.str)
		if !ok {
			// The value is not quoted: it may be a secret, and errors reach logs.
			return 0, fmt.Errorf("%w: the value is not a base-10 int64", store.ErrNotInteger)
		}
		cur, expireAt = n, e.expireAt
	}
	if delta > 0 && cur > math.MaxInt64-delta || delta < 0 && cur < math.MinInt64-delta {
		return 0, fmt.Errorf("%w: the increment would overflow int64", store.ErrNotInteger)
	}
	cur += delta
	v.put(key, &entry{kind: kindString, str: []byte(strconv.FormatInt(cur, 10)), expireAt: expireAt})
	return cur, nil
}

// Expire implements store.ScriptView.
func (v *view) Expire(key string, ttl time.Duration) (bool, error) {
	if err := store.ValidateTTL(ttl); err != nil {
		return false, err
	}
	e, err := v.lookup(key)
	if err != nil || e == nil {
		return false, err
	}
	e = e.copyForWrite()
	e.expireAt = v.expiry(ttl)
	v.put(key, e)
	return true, nil
}

// TTL implements store.ScriptView.
func (v *view) TTL(key string) (time.Duration, error) {
	e, err := v.lookup(key)
	switch {
	case err != nil:
		return 0, err
	case e == nil:
		return 0, store.ErrNotFound
	case e.expireAt.IsZero():
		return 0, nil
	}
	return max(store.RoundTTL(e.expireAt.Sub(v.now)), time.Millisecond), nil
}

// commit applies the overlay: it makes room under the cap first (evicting
// keys with a TTL that this operation does not touch), or refuses having
// changed nothing.
func (v *view) commit() error {
	if len(v.writes) == 0 {
		return nil
	}
	var dKeys, dBytes int64
	for _, k := range v.order {
		old, neu := v.sh.data[k], v.writes[k]
		if old != nil {
			dKeys--
			dBytes -= old.size(k)
		}
		if neu != nil {
			dKeys++
			dBytes += neu.size(k)
		}
	}
	if err := v.s.makeRoom(v.sh, v.allowed, dKeys, dBytes, v.now, v.apply); err != nil {
		return err
	}
	v.sweep()
	return nil
}

// apply writes the overlay into the shard and keeps the LRU list in step.
func (v *view) apply() {
	if !v.s.capped {
		// No cap, no eviction: no LRU list to keep.
		for _, k := range v.order {
			if neu := v.writes[k]; neu == nil {
				delete(v.sh.data, k)
			} else {
				v.sh.data[k] = neu
			}
		}
		return
	}
	v.s.lruMu.Lock()
	defer v.s.lruMu.Unlock()
	for _, k := range v.order {
		old, neu := v.sh.data[k], v.writes[k]
		var el *list.Element
		if old != nil {
			el = old.lru
		}
		if neu == nil {
			delete(v.sh.data, k)
		} else {
			v.sh.data[k] = neu
		}
		switch {
		case neu != nil && !neu.expireAt.IsZero():
			if el == nil {
				el = v.s.lru.PushBack(lruItem{shard: v.sh, key: k})
			} else {
				v.s.lru.MoveToBack(el)
			}
			neu.lru = el
		case el != nil:
			v.s.lru.Remove(el)
		}
	}
}

// sweep removes up to sweepLimit expired keys of the shard: incremental
// expiry, so keys nobody reads again do not stay forever.
func (v *view) sweep() { v.s.sweep(v.sh, v.now) }
