package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/karat-go/karat/store"
)

// numState says what entry.num holds.
type numState uint8

const (
	numUnknown numState = iota // str not read as an integer yet
	numInt                     // num is str's integer
	numNotInt                  // str is not an integer
	numDirty                   // num is the value; str has its length but not yet its digits
)

// materialize writes the digits of a numDirty entry into str. UpdateInt64
// leaves them unwritten (formatting 16 digits per update was a visible share
// of a rate-limit decision); every other reader finds entries through
// view.lookup, which calls this, under the shard lock.
func (e *entry) materialize() {
	if e.numState == numDirty {
		e.str = strconv.AppendInt(e.str[:0], e.num, 10)
		e.numState = numInt
	}
}

// decimalLen is len(strconv.FormatInt(v, 10)).
func decimalLen(v int64) int {
	n, u := 0, uint64(v)
	if v < 0 {
		n, u = 1, -u
	}
	// log10 from the bit length (1233/4096 ≈ log10(2)), then one compare:
	// no loop of divisions on the hot path (a TAT has 16 digits).
	d := bits.Len64(u) * 1233 >> 12
	if d < len(pow10) && u >= pow10[d] {
		d++
	}
	return n + max(d, 1)
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

var _ store.Int64Updater = (*Store)(nil)

// UpdateInt64 implements store.Int64Updater: under the key's shard lock, on
// the store's clock, with the integer kept typed in the entry and its
// decimal string (which Get and scripts read) written when it is first read,
// in the entry's own buffer: an existing (or expired) key is rewritten in
// place, without an allocation. An update that keeps the key's size and TTL
// state takes no lock but its shard's, and the LRU list's only when the key
// was not already the most recently used; one that adds a key makes room
// under the cap and sweeps its shard, as every other write does.
func (s *Store) UpdateInt64(ctx context.Context, key string, fn store.Int64Func, u store.Int64Update) (store.Int64Update, error) {
	s.g.CountCall()
	if err := s.g.CheckKey(ctx, key); err != nil {
		return u, err
	}
	if fn == nil {
		return u, s.g.End(errors.New("memstore: UpdateInt64 without a function"))
	}
	sh := s.shardOf(key)
	in := u // what an attempt starts from, and what an error returns
	for {
		err := s.updateInt64(ctx, sh, key, fn, &u)
		if err == nil {
			return u, nil
		}
		u = in
		if !errors.Is(err, errBusy) {
			return u, s.g.End(err)
		}
		keep := [1]string{key}
		if err := s.evictWaiting(ctx, keep[:]); err != nil {
			return u, s.g.End(err)
		}
		if err := ctx.Err(); err != nil {
			return u, err
		}
	}
}

// updateInt64 is one attempt of UpdateInt64 under sh's lock. It updates
// *u in place (a pointer, not a copy of the update in and out of each call:
// the update is 150 bytes, and a decision made several copies of it).
func (s *Store) updateInt64(ctx context.Context, sh *shard, key string, fn store.Int64Func, u *store.Int64Update) error {
	if !sh.mu.tryLock() {
		if err := s.lockWaiting(ctx, sh, u.Wait); err != nil {
			return err
		}
	}
	defer sh.mu.unlock()
	return s.updateLocked(sh, key, fn, u)
}

// lockWaiting takes sh's lock, which another call holds, waiting at most
// wait (when > 0) on top of ctx.
func (s *Store) lockWaiting(ctx context.Context, sh *shard, wait time.Duration) error {
	if sh.mu.spin() {
		return nil
	}
	var expire <-chan struct{}
	if wait > 0 {
		expire = s.waitUntil(wait)
	}
	return sh.mu.lockUntil(ctx, s.closing, expire, wait)
}

// waitDeadline is a channel closed at a deadline, shared by the calls that
// start waiting at about the same time with the same bound.
type waitDeadline struct {
	wait time.Duration
	at   time.Time
	done chan struct{}
}

// waitUntil returns a channel that is closed between 15/16 of wait and
// wait from now. Calls that wait with the same bound at about the same time
// share one (a timer and a channel every wait/16 at most, rather than a
// context and a timer per waiting call: under contention on one key, many
// calls wait).
func (s *Store) waitUntil(wait time.Duration) <-chan struct{} {
	now := time.Now()
	d := s.waitEnd.Load()
	if d == nil || d.wait != wait || d.at.Sub(now) < wait-wait/16 {
		n := &waitDeadline{wait: wait, at: now.Add(wait), done: make(chan struct{})}
		time.AfterFunc(wait, func() { close(n.done) })
		s.waitEnd.CompareAndSwap(d, n) // a racing call may have made one too: either bounds this call
		d = n
	}
	return d.done
}

// updateLocked is updateInt64 under sh's lock.
func (s *Store) updateLocked(sh *shard, key string, fn store.Int64Func, u *store.Int64Update) error {
	now := s.nowMicro()
	e := sh.data[key]
	// An expired entry reads as missing; it is removed, or reused in place
	// when fn sets the key again (no allocation for a key that comes back).
	stale := e != nil && expired(e, now)
	if stale {
		s.expired.Add(1)
	}
	u.Now, u.Value, u.Found = now, 0, false
	if e != nil && !stale {
		if e.kind != kindString {
			return store.ErrWrongType
		}
		u.Value, u.Found = e.int64()
	}
	*u = fn(*u)
	switch u.Op {
	case store.Int64Keep:
		switch {
		case stale:
			s.removeLocked(sh, key, e)
		case e != nil:
			s.touch(e)
		}
		return nil
	case store.Int64Delete:
		if e != nil {
			s.removeLocked(sh, key, e)
		}
		return nil
	case store.Int64Set:
	default:
		if stale {
			s.removeLocked(sh, key, e)
		}
		return fmt.Errorf("memstore: UpdateInt64: unknown change %d", u.Op)
	}
	if err := store.ValidateTTL(u.TTL); err != nil {
		if stale {
			s.removeLocked(sh, key, e)
		}
		return err
	}
	var expireAt time.Time
	if u.TTL > 0 {
		expireAt = now.Add(store.RoundTTL(u.TTL))
	}
	digits := decimalLen(u.New)
	keep := [1]string{key}
	if e == nil {
		key = strings.Clone(key) // the caller may reuse its bytes (the Int64Updater contract)
		keep[0] = key
		ne := &entry{kind: kindString, numState: numDirty, num: u.New, str: make([]byte, digits), expireAt: expireAt}
		err := s.makeRoom(sh, keep[:], 1, ne.size(key), now, func() {
			sh.data[key] = ne
			if s.capped && !expireAt.IsZero() {
				s.lruMu.Lock()
				ne.lru = s.lru.PushBack(lruItem{shard: sh, key: key})
				s.lruMu.Unlock()
			}
		})
		if err != nil {
			return err
		}
		s.sweep(sh, now)
		return nil
	}
	// In place (a live entry, or an expired one reused): a failed makeRoom
	// leaves e as it was (an expired e is then removed).
	write := func() {
		e.kind, e.hash = kindString, nil
		if cap(e.str) >= digits {
			e.str = e.str[:digits]
		} else {
			e.str = make([]byte, digits, 20)
		}
		e.num, e.numState = u.New, numDirty
		e.expireAt = expireAt
		if !s.capped || !expireAt.IsZero() && e.lru != nil && s.lru.isBack(e.lru) {
			return // no LRU list, or already its most recently used
		}
		s.lruMu.Lock()
		switch {
		case expireAt.IsZero() && e.lru != nil:
			s.lru.Remove(e.lru)
			e.lru = nil
		case expireAt.IsZero():
		case e.lru == nil:
			e.lru = s.lru.PushBack(lruItem{shard: sh, key: key})
		default:
			s.lru.MoveToBack(e.lru)
		}
		s.lruMu.Unlock()
	}
	if d := int64(len(key)+EntryOverhead+digits) - e.size(key); d != 0 {
		if err := s.makeRoom(sh, keep[:], 0, d, now, write); err != nil {
			if stale {
				s.removeLocked(sh, key, e)
			}
			return err
		}
		return nil
	}
	write()
	return nil
}

// int64 reads e, a string entry, as UpdateInt64 reads integers, and
// remembers the answer; the caller holds e's shard lock.
func (e *entry) int64() (int64, bool) {
	switch e.numState {
	case numInt, numDirty:
		return e.num, true
	case numNotInt:
		return 0, false
	}
	n, ok := parseDecimal(e.str)
	if ok {
		e.num, e.numState = n, numInt
	} else {
		e.numState = numNotInt
	}
	return n, ok
}

// parseDecimal reads an optional '-' then decimal digits (leading zeros
// allowed) within int64.
func parseDecimal(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), true // n = 1<<63 wraps to MinInt64, as wanted
	}
	return int64(n), true
}

// sweep removes up to sweepLimit keys of sh that expired more than
// sweepGrace ago, whose lock the caller holds: incremental expiry, so keys
// nobody reads again do not stay forever. It takes no lock but sh's (and,
// per key it removes, the accounting's).
//
// The grace keeps a key that expired a moment ago for its next write, which
// reuses the entry in place: a rate-limit bucket lives exactly until it
// refills (one interval after a lone request), and a key that comes back
// within a second costs no allocation. An expired key reads as missing
// from its expiry instant on, swept or not.
func (s *Store) sweep(sh *shard, now time.Time) {
	n := 0
	before := now.Add(-sweepGrace)
	for k, e := range sh.data {
		if n == sweepLimit {
			return
		}
		n++
		if expired(e, before) {
			s.removeLocked(sh, k, e)
			s.expired.Add(1)
		}
	}
}
