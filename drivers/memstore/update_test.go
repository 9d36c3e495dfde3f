package memstore

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

func setTo(v int64, ttl time.Duration) store.Int64Func {
	return func(u store.Int64Update) store.Int64Update {
		u.Op, u.New, u.TTL = store.Int64Set, v, ttl
		return u
	}
}

// TestUpdateInt64OtherShardsProceed is the structural check that no
// decision waits for a lock over the whole store: while one shard's lock is
// held (as during that shard's sweep, which runs under it alone), updates
// that create keys in every other shard (and so make room under the cap and
// sweep their own shard) complete; an update on the held shard waits, and
// gives up after its Wait with ErrUnavailable and DeadlineExceeded.
func TestUpdateInt64OtherShardsProceed(t *testing.T) {
	clock := NewFakeClock(time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(&Options{MaxEntries: 200, Clock: clock})
	defer s.Close()
	ctx := context.Background()
	// Fill past the cap with keys that expire, in every shard.
	for i := range 400 {
		if _, err := s.UpdateInt64(ctx, "fill:"+strconv.Itoa(i), setTo(1, time.Second), store.Int64Update{}); err != nil {
			t.Fatal(err)
		}
	}
	held := s.shardOf("held")
	held.mu.lockWait()
	done := make(chan error, 1)
	go func() {
		for i := range 1000 {
			k := "other:" + strconv.Itoa(i)
			if s.shardOf(k) == held {
				continue
			}
			if _, err := s.UpdateInt64(ctx, k, setTo(int64(i), time.Minute), store.Int64Update{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("updates on other shards waited for the held one")
	}
	_, err := s.UpdateInt64(ctx, "held", setTo(1, 0), store.Int64Update{Wait: 10 * time.Millisecond})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an update on the held shard: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	held.mu.unlock()
	if _, err := s.UpdateInt64(ctx, "held", setTo(1, 0), store.Int64Update{Wait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Keys > 200 {
		t.Fatalf("%d keys over a cap of 200", st.Keys)
	}
}

// TestUpdateInt64Semantics: what UpdateInt64 reads and writes is what Get,
// TTL and Set see; an expired key reads as missing; garbage reads as not
// found; a hash is ErrWrongType; a failed change writes nothing.
func TestUpdateInt64Semantics(t *testing.T) {
	clock := NewFakeClock(time.Date(2040, 1, 2, 3, 4, 5, 678901234, time.UTC))
	s := New(&Options{Clock: clock})
	defer s.Close()
	ctx := context.Background()
	read := func(key string) store.Int64Update {
		t.Helper()
		u, err := s.UpdateInt64(ctx, key, func(u store.Int64Update) store.Int64Update { return u }, store.Int64Update{})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := read("k"); u.Found || u.Value != 0 || !u.Now.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("missing key: %+v", u)
	}
	if _, err := s.UpdateInt64(ctx, "k", setTo(-42, 1500*time.Microsecond), store.Int64Update{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(ctx, "k"); string(v) != "-42" {
		t.Fatalf("Get = %q", v)
	}
	if ttl, _ := s.TTL(ctx, "k"); ttl != 2*time.Millisecond {
		t.Fatalf("TTL = %v, want 2ms (rounded up)", ttl)
	}
	if u := read("k"); !u.Found || u.Value != -42 {
		t.Fatalf("read back: %+v", u)
	}
	clock.Advance(3 * time.Millisecond)
	if u := read("k"); u.Found {
		t.Fatalf("expired key read as %+v", u)
	}
	for val, want := range map[string]int64{"12": 12, "007": 7, "-9223372036854775808": -1 << 63} {
		_ = s.Set(ctx, "g", []byte(val), 0)
		if u := read("g"); !u.Found || u.Value != want {
			t.Fatalf("%q read as %+v", val, u)
		}
	}
	for _, val := range []string{"", "x", "1.5", "+1", "9223372036854775808", "--1", " 1"} {
		_ = s.Set(ctx, "g", []byte(val), 0)
		if u := read("g"); u.Found {
			t.Fatalf("%q read as %+v", val, u)
		}
	}
	_ = s.HSet(ctx, "h", map[string][]byte{"f": []byte("1")})
	if _, err := s.UpdateInt64(ctx, "h", setTo(1, 0), store.Int64Update{}); !errors.Is(err, store.ErrWrongType) {
		t.Fatalf("hash: %v", err)
	}
	_ = s.Set(ctx, "n", []byte("5"), 0)
	if _, err := s.UpdateInt64(ctx, "n", setTo(6, -time.Second), store.Int64Update{}); !errors.Is(err, store.ErrInvalidTTL) {
		t.Fatalf("negative TTL: %v", err)
	}
	if v, _ := s.Get(ctx, "n"); string(v) != "5" {
		t.Fatalf("a failed change wrote %q", v)
	}
	if _, err := s.UpdateInt64(ctx, "n", func(u store.Int64Update) store.Int64Update { u.Op = store.Int64Delete; return u }, store.Int64Update{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "n"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	if _, err := s.UpdateInt64(ctx, "", setTo(1, 0), store.Int64Update{}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := s.UpdateInt64(ctx, "k", nil, store.Int64Update{}); err == nil {
		t.Fatal("a nil function was accepted")
	}
}

func TestDecimalLen(t *testing.T) {
	vs := []int64{0, 1, 9, 10, 99, 100, -1, -9, -10, 1<<63 - 1, -1 << 63, 1_700_000_000_000_000, -123456789}
	for p := int64(1); p <= 1e18; p *= 10 { // every edge between two lengths
		vs = append(vs, p-1, p, p+1, -p+1, -p, -p-1)
	}
	for i := range 63 { // and every bit length
		vs = append(vs, 1<<i, 1<<i-1, -(1 << i))
	}
	for _, v := range vs {
		if got, want := decimalLen(v), len(strconv.FormatInt(v, 10)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", v, got, want)
		}
	}
}

// TestSweepGrace: a key that expired less than sweepGrace ago survives the
// sweeps that writes to its shard run, reads as missing all the same, and
// is then rewritten in place without an allocation (a rate-limit bucket
// lives exactly until it refills, and comes back); once sweepGrace has
// passed, the sweeps reclaim it.
func TestSweepGrace(t *testing.T) {
	ctx := context.Background()
	clock := NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(&Options{Clock: clock})
	defer s.Close()
	const n = 64
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "{t}bucket:" + strconv.Itoa(i)
		if _, err := s.UpdateInt64(ctx, keys[i], setTo(1, time.Millisecond), store.Int64Update{}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Millisecond)
	for i := range 4 * n { // new keys in the same shard: each write sweeps
		if _, err := s.UpdateInt64(ctx, "{t}other:"+strconv.Itoa(i), setTo(1, time.Hour), store.Int64Update{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, keys[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired key reads %v, want ErrNotFound", err)
	}
	i := 1
	allocs := testing.AllocsPerRun(n-2, func() {
		u, err := s.UpdateInt64(ctx, keys[i], setTo(2, time.Millisecond), store.Int64Update{})
		if err != nil || u.Found {
			t.Fatalf("rewriting an expired key: found %v, %v", u.Found, err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("rewriting a key that expired %v ago: %v allocations, want 0 (reused in place)", 2*time.Millisecond, allocs)
	}

	before := s.Stats().Keys
	clock.Advance(sweepGrace + time.Millisecond)
	for i := range 4 * n {
		if _, err := s.UpdateInt64(ctx, "{t}late:"+strconv.Itoa(i), setTo(1, time.Hour), store.Int64Update{}); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.Stats().Keys; after >= before+4*n {
		t.Errorf("keys %d before, %d after %d writes past the grace: no expired key reclaimed", before, after, 4*n)
	}
}
