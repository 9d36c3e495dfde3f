package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

var ctx = context.Background()

func exists(t *testing.T, s store.Store, k string) bool {
	t.Helper()
	_, err := s.TTL(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// keysInDistinctShards returns n keys that land in n different shards, so
// that eviction has to cross shards.
func keysInDistinctShards(n int) []string {
	var keys []string
	seen := map[int]bool{}
	for i := 0; len(keys) < n; i++ {
		k := "k" + strconv.Itoa(i)
		if s := store.Slot(k) % 64; !seen[s] {
			seen[s] = true
			keys = append(keys, k)
		}
	}
	return keys
}

func TestEvictionIsLRUAcrossShards(t *testing.T) {
	s := memstore.New(&memstore.Options{MaxEntries: 4})
	k := keysInDistinctShards(6)
	for _, key := range k[:4] {
		if err := s.Set(ctx, key, []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Use k0 and k1 again: k2 is now the least recently used.
	if _, err := s.Get(ctx, k[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HGet(ctx, k[1], "f"); !errors.Is(err, store.ErrWrongType) {
		t.Fatal(err)
	}
	if err := s.Set(ctx, k[4], []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if exists(t, s, k[2]) {
		t.Errorf("%s, least recently used, should have been evicted", k[2])
	}
	if err := s.Set(ctx, k[5], []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if exists(t, s, k[3]) {
		t.Errorf("%s should have been evicted next", k[3])
	}
	for _, key := range []string{k[0], k[1], k[4], k[5]} {
		if !exists(t, s, key) {
			t.Errorf("%s was evicted out of order", key)
		}
	}
	if st := s.Stats(); st.Evictions != 2 || st.Keys != 4 {
		t.Errorf("stats %+v: want 2 evictions, 4 keys", st)
	}
}

func TestByteCap(t *testing.T) {
	s := memstore.New(&memstore.Options{MaxBytes: 3 * (memstore.EntryOverhead + 1 + 100)})
	for i := range 3 {
		if err := s.Set(ctx, strconv.Itoa(i), make([]byte, 100), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "3", make([]byte, 100), 0); !errors.Is(err, store.ErrFull) {
		t.Fatalf("over the byte cap: %v", err)
	}
	if err := s.Set(ctx, "0", make([]byte, 101), 0); !errors.Is(err, store.ErrFull) {
		t.Fatalf("growing a value over the cap: %v", err)
	}
	if err := s.Set(ctx, "0", make([]byte, 50), 0); err != nil {
		t.Fatalf("shrinking a value: %v", err)
	}
	if st := s.Stats(); st.Bytes != 3*(memstore.EntryOverhead+1)+250 {
		t.Errorf("bytes %d", st.Bytes)
	}
}

// A write that cannot fit is refused before anything is evicted: refusing
// it must not also empty the cache.
func TestFullEvictsNothing(t *testing.T) {
	s := memstore.New(&memstore.Options{MaxEntries: 3, MaxBytes: 1000})
	_ = s.Set(ctx, "{a}p", []byte("v"), 0)
	_ = s.Set(ctx, "{a}t1", []byte("v"), time.Hour)
	_ = s.Set(ctx, "{b}t2", []byte("v"), time.Hour)
	if err := s.Set(ctx, "big", make([]byte, 1000), time.Hour); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a value larger than the store: %v", err)
	}
	// Three new keys need three evictions; only two keys have a TTL.
	sc := store.NewScript("three-keys", "", func(v store.ScriptView, keys, _ []string) (store.Value, error) {
		for _, k := range keys {
			if err := v.Set(k, []byte("v"), time.Hour); err != nil {
				return store.Value{}, err
			}
		}
		return store.NilValue(), nil
	})
	if _, err := s.Eval(ctx, sc, []string{"{c}1", "{c}2", "{c}3"}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("three new keys over two evictable ones: %v", err)
	}
	for _, k := range []string{"{a}p", "{a}t1", "{b}t2"} {
		if !exists(t, s, k) {
			t.Errorf("%s was evicted by a write that was refused", k)
		}
	}
	if st := s.Stats(); st.Evictions != 0 || st.Keys != 3 {
		t.Errorf("stats %+v: want no eviction, 3 keys", st)
	}
}

func TestFullScriptWritesNothing(t *testing.T) {
	s := memstore.New(&memstore.Options{MaxEntries: 2})
	if err := s.Set(ctx, "{a}x", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	sc := store.NewScript("two-writes", "", func(v store.ScriptView, keys, _ []string) (store.Value, error) {
		if err := v.Set(keys[0], []byte("changed"), 0); err != nil {
			return store.Value{}, err
		}
		return store.NilValue(), v.Set(keys[1], []byte("new"), 0)
	})
	if _, err := s.Eval(ctx, sc, []string{"{a}x", "{a}y"}); err != nil {
		t.Fatalf("one new key fits: %v", err)
	}
	if _, err := s.Eval(ctx, sc, []string{"{a}x", "{a}z"}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a third key: %v", err)
	}
	if exists(t, s, "{a}z") {
		t.Error("refused script created a key")
	}
	failing := store.NewScript("fails", "", func(v store.ScriptView, keys, _ []string) (store.Value, error) {
		_ = v.Set(keys[0], []byte("written before the error"), 0)
		return store.Value{}, &store.ScriptError{Message: "NOPE"}
	})
	if _, err := s.Eval(ctx, failing, []string{"{a}x"}); err == nil {
		t.Fatal("want the body's error")
	}
	if v, _ := s.Get(ctx, "{a}x"); string(v) != "changed" {
		t.Errorf("a failing body's writes were committed: %q", v)
	}
}

func TestCapHoldsUnderConcurrentWriters(t *testing.T) {
	const maxEntries = 50
	s := memstore.New(&memstore.Options{MaxEntries: maxEntries})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	violations := make(chan int64, 1)
	go func() { // the cap is never exceeded, even for an instant
		for {
			select {
			case <-stop:
				return
			default:
				if n := s.Stats().Keys; n > maxEntries {
					select {
					case violations <- n:
					default:
					}
				}
			}
		}
	}()
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				ttl := time.Hour
				if i%10 == 0 {
					ttl = 0
				}
				err := s.Set(ctx, fmt.Sprintf("g%d-%d", g, i), []byte("v"), ttl)
				if err != nil && !errors.Is(err, store.ErrFull) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	select {
	case n := <-violations:
		t.Fatalf("%d keys held, cap %d", n, maxEntries)
	default:
	}
	if n := s.Stats().Keys; n > maxEntries {
		t.Fatalf("%d keys held at the end, cap %d", n, maxEntries)
	}
}

// With every key carrying a TTL there is always something to evict: no
// write is refused, however many writers contend for a tiny cap, and
// whichever shards they hold.
func TestNoErrFullWhileKeysHaveTTL(t *testing.T) {
	for _, maxEntries := range []int{1, 4} {
		s := memstore.New(&memstore.Options{MaxEntries: maxEntries})
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Go(func() {
				for i := range 300 {
					if err := s.Set(ctx, fmt.Sprintf("g%d-%d", g, i), []byte("v"), time.Hour); err != nil {
						t.Errorf("cap %d: %v", maxEntries, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if st := s.Stats(); st.Keys != int64(maxEntries) || st.Evictions != uint64(64*300-maxEntries) {
			t.Errorf("cap %d: stats %+v", maxEntries, st)
		}
	}
}

func TestExpiredVictimCountsAsExpired(t *testing.T) {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{MaxEntries: 2, Clock: clock})
	k := keysInDistinctShards(3)
	_ = s.Set(ctx, k[0], []byte("v"), time.Second)
	_ = s.Set(ctx, k[1], []byte("v"), time.Hour)
	clock.Advance(2 * time.Second)
	if err := s.Set(ctx, k[2], []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Expired != 1 || st.Evictions != 0 || st.Keys != 2 {
		t.Errorf("stats %+v: want 1 expired, no eviction, 2 keys", st)
	}
}

func TestFakeClockExpiry(t *testing.T) {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	if err := s.Set(ctx, "k", []byte("v"), 1500*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if d, err := s.TTL(ctx, "k"); err != nil || d != 2*time.Millisecond {
		t.Fatalf("TTL = %v, %v; want 2ms (rounded up)", d, err)
	}
	clock.Advance(2*time.Millisecond - time.Nanosecond)
	if d, err := s.TTL(ctx, "k"); err != nil || d != time.Millisecond {
		t.Fatalf("a nanosecond before its expiry: TTL = %v, %v; want 1ms (rounded up, never 0)", d, err)
	}
	clock.Advance(time.Nanosecond)
	if exists(t, s, "k") {
		t.Fatal("a key is gone at its expiry instant (as on miniredis)")
	}
	if st := s.Stats(); st.Expired != 1 || st.Keys != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIncrementalExpiry(t *testing.T) {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	for i := range 20 {
		if err := s.Set(ctx, "{t}"+strconv.Itoa(i), []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Second)
	// Writes to the shard, never reading the expired keys, still reclaim them.
	for i := range 5 {
		if err := s.Set(ctx, "{t}w"+strconv.Itoa(i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Expired == 0 {
		t.Errorf("no key reclaimed by writes: %+v", st)
	}
}

func TestStatsAndAs(t *testing.T) {
	s := memstore.New(nil)
	_, _ = s.Get(ctx, "missing")
	_ = s.Set(ctx, "k", []byte("v"), 0)
	_, _ = s.IncrBy(ctx, "k", 1, 0) // not an integer: an error
	st := s.Stats()
	if st.Calls != 3 || st.Errors != 1 || st.Keys != 1 {
		t.Errorf("stats %+v", st)
	}
	var m *memstore.Store
	if !s.As(&m) || m != s {
		t.Error("As(**Store)")
	}
	var other *int
	if s.As(&other) {
		t.Error("As of an unknown type")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Keys != 0 || st.Bytes != 0 {
		t.Errorf("after Close: %+v", st)
	}
}

func ExampleNew() {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{MaxEntries: 100_000, Clock: clock})
	defer s.Close()

	n, _ := s.IncrBy(ctx, "logins:shop-42", 1, time.Minute)
	fmt.Println(n)
	clock.Advance(time.Minute + time.Millisecond)
	n, _ = s.IncrBy(ctx, "logins:shop-42", 1, time.Minute)
	fmt.Println(n)
	// Output:
	// 1
	// 1
}
