package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/store"
)

type storeCase struct {
	name string
	run  func(e *env)
}

var storeCases = []storeCase{
	{"Capabilities", testCapabilities},
	{"Ping", testPing},
	{"GetSet", testGetSet},
	{"Values", testValues},
	{"MGet", testMGet},
	{"SetNX", testSetNX},
	{"SetNXOneWinner", testSetNXOneWinner},
	{"Delete", testDelete},
	{"Hash", testHash},
	{"WrongType", testWrongType},
	{"IncrBy", testIncrBy},
	{"IncrByTTLOnlyOnCreate", testIncrByTTLOnlyOnCreate},
	{"IncrByConcurrent", testIncrByConcurrent},
	{"IncrByAcrossProcesses", testIncrByAcrossProcesses},
	{"TTLRules", testTTLRules},
	{"NegativeTTLWritesNothing", testNegativeTTL},
	{"SubMillisecondTTL", testSubMillisecondTTL},
	{"TTLOverflow", testTTLOverflow},
	{"Expiry", testExpiry},
	{"InvalidKeys", testInvalidKeys},
	{"HostileKeys", testHostileKeys},
	{"CrossSlot", testCrossSlot},
	{"ScriptBodiesAgree", testScriptBodiesAgree},
	{"ScriptValues", testScriptValues},
	{"ScriptClock", testScriptClock},
	{"ScriptContention", testScriptContention},
	{"CanceledContext", testCanceledContext},
	{"StalledServer", testStalledServer},
	{"DeadlineWhileBusy", testDeadlineWhileBusy},
	{"Close", testClose},
	{"UserClientStaysOpen", testUserClientStaysOpen},
	{"CachedReads", testCachedReads},
	{"CachedReadsSeeOtherWriters", testCachedReadsOtherWriter},
	{"CachedReadsBoundedUnderPartition", testCachedReadsPartition},
	{"Scan", testScan},
	{"Stats", testStats},
	{"Usage", testUsage},
	{"CapEvictsOnlyTTLKeys", testCap},
}

// RunStore runs every store case against stores from newHarness, each case
// on a harness of its own, as subtests named after the cases.
func RunStore(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	for _, c := range storeCases {
		t.Run(c.name, func(t *testing.T) {
			c.run(newEnv(t, newHarness))
		})
	}
}

func testCapabilities(e *env) {
	want := slices.Clone(e.h.Capabilities())
	slices.Sort(want)
	got := store.Capabilities(e.s)
	if len(want) == 0 {
		want = nil
	}
	assert.Equal(e.t, want, got, "capabilities the store has (got) vs what the harness declares (want)")
}

func testPing(e *env) {
	require.NoError(e.t, e.s.Ping(e.ctx))
}

func testGetSet(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("k")
	_, err := s.Get(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound, "Get of a missing key")

	in := []byte("v1")
	require.NoError(t, s.Set(ctx, k, in, 0))
	in[0] = 'X' // the store must have copied it
	got, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v1"), got)
	got[0] = 'Y' // and must hand out copies
	again, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v1"), again)

	require.NoError(t, s.Set(ctx, k, []byte("v2"), time.Hour))
	got, err = s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v2"), got, "Set replaces")
}

func testValues(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	values := map[string][]byte{
		"empty":     {},
		"nul":       {0},
		"all-bytes": all,
		"bad-utf8":  {0xff, 0xfe, 0xc3, 0x28},
		"crlf":      []byte("a\r\nb\r\n$3\r\n"),
		"1MiB":      big,
	}
	for name, v := range values {
		k := e.key("value-" + name)
		require.NoError(t, s.Set(ctx, k, v, 0), name)
		got, err := s.Get(ctx, k)
		require.NoError(t, err, name)
		require.NotNil(t, got, "%s: a stored value is never nil", name)
		require.True(t, bytes.Equal(v, got), "%s: value changed on the round trip (%d bytes in, %d out)", name, len(v), len(got))
	}
	k := e.tagged("empty")
	require.NoError(t, s.Set(ctx, k, nil, 0))
	vs, err := s.MGet(ctx, k)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.NotNil(t, vs[0], "MGet: an empty value is not a missing one")
	assert.Empty(t, vs[0])
}

func testMGet(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	a, b, h := e.tagged("a"), e.tagged("b"), e.tagged("h")
	require.NoError(t, s.Set(ctx, a, []byte("va"), 0))
	require.NoError(t, s.HSet(ctx, h, map[string][]byte{"f": []byte("x")}))
	got, err := s.MGet(ctx, a, b, h, a)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("va"), nil, nil, []byte("va")}, got, "value, missing, hash, value again")
	none, err := s.MGet(ctx)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testSetNX(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("nx")
	ok, err := s.SetNX(ctx, k, []byte("first"), 0)
	require.NoError(t, err)
	assert.True(t, ok, "SetNX on a missing key")
	ok, err = s.SetNX(ctx, k, []byte("second"), time.Hour)
	require.NoError(t, err)
	assert.False(t, ok, "SetNX on an existing key")
	got, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("first"), got)
	ttl, err := s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl, "a losing SetNX leaves the TTL alone")

	k2 := e.key("nx-ttl")
	ok, err = s.SetNX(ctx, k2, []byte("v"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	ttl, err = s.TTL(ctx, k2)
	require.NoError(t, err)
	assert.True(t, ttl > 59*time.Minute && ttl <= time.Hour, "TTL after SetNX with 1h: %v", ttl)
}

func testSetNXOneWinner(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("race")
	const n = 64
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			v := []byte("g" + strconv.Itoa(i))
			ok, err := s.SetNX(ctx, k, v, time.Hour)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				wins.Add(1)
				winner.Store(v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, wins.Load(), "exactly one SetNX wins among %d", n)
	got, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, winner.Load(), got, "the stored value is the winner's")
}

func testDelete(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	a, b, h, missing := e.tagged("a"), e.tagged("b"), e.tagged("h"), e.tagged("missing")
	require.NoError(t, s.Set(ctx, a, []byte("1"), 0))
	require.NoError(t, s.Set(ctx, b, []byte("2"), time.Hour))
	require.NoError(t, s.HSet(ctx, h, map[string][]byte{"f": []byte("x")}))
	n, err := s.Delete(ctx, a, b, h, missing)
	require.NoError(t, err)
	assert.EqualValues(t, 3, n, "Delete counts the keys that existed")
	for _, k := range []string{a, b, h} {
		_, err := s.TTL(ctx, k)
		assert.ErrorIs(t, err, store.ErrNotFound, "deleted key %q", k)
	}
	n, err = s.Delete(ctx, a)
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = s.Delete(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "Delete of no keys")
}

func testHash(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("hash")
	_, err := s.HGetAll(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound, "HGetAll of a missing key")
	_, err = s.HGet(ctx, k, "f")
	require.ErrorIs(t, err, store.ErrNotFound, "HGet of a missing key")
	require.NoError(t, s.HSet(ctx, k, nil), "HSet of no fields")
	_, err = s.TTL(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound, "HSet of no fields creates nothing")

	require.NoError(t, s.HSet(ctx, k, map[string][]byte{"f1": []byte("v1"), "f2": {}, "bin\x00:*": {0xff}}))
	v, err := s.HGet(ctx, k, "f1")
	require.NoError(t, err)
	assert.Equal(t, []byte("v1"), v)
	v, err = s.HGet(ctx, k, "f2")
	require.NoError(t, err)
	assert.NotNil(t, v, "an empty field value is not a missing one")
	_, err = s.HGet(ctx, k, "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "HGet of a missing field")
	all, err := s.HGetAll(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"f1": []byte("v1"), "f2": {}, "bin\x00:*": {0xff}}, all)

	ok, err := s.Expire(ctx, k, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.HSet(ctx, k, map[string][]byte{"f1": []byte("v1b")}))
	ttl, err := s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0), "HSet keeps the key's TTL")

	n, err := s.HDel(ctx, k, "f1", "nope")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	n, err = s.HDel(ctx, k, "f2", "bin\x00:*")
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)
	_, err = s.HGetAll(ctx, k)
	assert.ErrorIs(t, err, store.ErrNotFound, "a hash without fields no longer exists")
	n, err = s.HDel(ctx, k, "f1")
	require.NoError(t, err)
	assert.Zero(t, n, "HDel on a missing key")
}

func testWrongType(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	str, h := e.key("str"), e.key("hash")
	require.NoError(t, s.Set(ctx, str, []byte("1"), 0))
	require.NoError(t, s.HSet(ctx, h, map[string][]byte{"f": []byte("x")}))
	_, err := s.HGet(ctx, str, "f")
	assert.ErrorIs(t, err, store.ErrWrongType, "HGet on a string")
	assert.ErrorIs(t, s.HSet(ctx, str, map[string][]byte{"f": nil}), store.ErrWrongType, "HSet on a string")
	_, err = s.HDel(ctx, str, "f")
	assert.ErrorIs(t, err, store.ErrWrongType, "HDel on a string")
	_, err = s.HGetAll(ctx, str)
	assert.ErrorIs(t, err, store.ErrWrongType, "HGetAll on a string")
	_, err = s.Get(ctx, h)
	assert.ErrorIs(t, err, store.ErrWrongType, "Get on a hash")
	_, err = s.IncrBy(ctx, h, 1, 0)
	assert.ErrorIs(t, err, store.ErrWrongType, "IncrBy on a hash")
	all, err := s.HGetAll(ctx, h)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"f": []byte("x")}, all, "failed calls wrote nothing")

	require.NoError(t, s.Set(ctx, h, []byte("now a string"), 0), "Set replaces a hash")
	v, err := s.Get(ctx, h)
	require.NoError(t, err)
	assert.Equal(t, []byte("now a string"), v)
}

func testIncrBy(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("n")
	n, err := s.IncrBy(ctx, k, 5, 0)
	require.NoError(t, err)
	assert.EqualValues(t, 5, n)
	n, err = s.IncrBy(ctx, k, -7, 0)
	require.NoError(t, err)
	assert.EqualValues(t, -2, n)
	v, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("-2"), v, "counters are stored in base 10")

	for _, bad := range []string{"abc", "1.5", "", " 1", "9223372036854775808"} {
		kb := e.key("bad-" + bad)
		require.NoError(t, s.Set(ctx, kb, []byte(bad), 0))
		_, err := s.IncrBy(ctx, kb, 1, 0)
		assert.ErrorIs(t, err, store.ErrNotInteger, "IncrBy on %q", bad)
		got, err := s.Get(ctx, kb)
		require.NoError(t, err)
		assert.Equal(t, []byte(bad), got, "a failed IncrBy writes nothing")
	}
	kmax := e.key("max")
	require.NoError(t, s.Set(ctx, kmax, []byte(strconv.FormatInt(math.MaxInt64, 10)), 0))
	_, err = s.IncrBy(ctx, kmax, 1, 0)
	assert.ErrorIs(t, err, store.ErrNotInteger, "overflow")
	kmin := e.key("min")
	_, err = s.IncrBy(ctx, kmin, math.MinInt64, 0)
	require.NoError(t, err)
	_, err = s.IncrBy(ctx, kmin, -1, 0)
	assert.ErrorIs(t, err, store.ErrNotInteger, "underflow")
}

func testIncrByTTLOnlyOnCreate(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	ttlOf := func(k string) time.Duration {
		t.Helper()
		d, err := s.TTL(ctx, k)
		require.NoError(t, err)
		return d
	}
	created := e.key("created")
	_, err := s.IncrBy(ctx, created, 1, time.Hour)
	require.NoError(t, err)
	first := ttlOf(created)
	assert.True(t, first > 59*time.Minute && first <= time.Hour, "TTL applied on creation: %v", first)
	_, err = s.IncrBy(ctx, created, 1, 5*time.Second)
	require.NoError(t, err)
	assert.Greater(t, ttlOf(created), 5*time.Second, "a later IncrBy does not change the TTL")
	_, err = s.IncrBy(ctx, created, 1, 0)
	require.NoError(t, err)
	assert.Greater(t, ttlOf(created), 5*time.Second, "nor does one with ttl 0 remove it")

	zero := e.key("holds-zero")
	require.NoError(t, s.Set(ctx, zero, []byte("0"), 0))
	n, err := s.IncrBy(ctx, zero, 1, time.Hour)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	assert.Zero(t, ttlOf(zero), "a key that holds 0 exists: IncrBy did not create it, so no TTL")

	byZero := e.key("by-zero")
	n, err = s.IncrBy(ctx, byZero, 0, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Greater(t, ttlOf(byZero), time.Duration(0), "IncrBy of 0 on a missing key creates it, with the TTL")

	persistent := e.key("persistent")
	_, err = s.IncrBy(ctx, persistent, 3, 0)
	require.NoError(t, err)
	assert.Zero(t, ttlOf(persistent), "ttl 0 creates a key without expiry")
}

func testIncrByConcurrent(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("concurrent")
	const goroutines, each = 64, 40
	seen := make([]atomic.Bool, goroutines*each+1)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range goroutines {
		wg.Go(func() {
			for range each {
				n, err := s.IncrBy(ctx, k, 1, time.Hour)
				if err != nil {
					failed.Store(err)
					return
				}
				if n < 1 || n > goroutines*each || seen[n].Swap(true) {
					failed.Store(fmt.Errorf("IncrBy returned %d twice or out of range", n))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(goroutines*each), string(v), "every increment counted once")
	ttl, err := s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Greater(t, ttl, 59*time.Minute)
}

// testIncrByAcrossProcesses: 4 OS processes, each with its own client, ×
// 16 goroutines increment one counter; every increment counts once.
func testIncrByAcrossProcesses(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("across")
	const procs, goroutines, each = 4, 16, 25
	for i, errs := range RunWorkers(t, e.h, procs, "incr", k, strconv.Itoa(goroutines), strconv.Itoa(each)) {
		assert.Equal(t, "0", errs, "worker %d: failed increments", i)
	}
	v, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(procs*goroutines*each), string(v), "every increment from every process counted once")
}

func testTTLRules(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	_, err := s.TTL(ctx, e.key("missing"))
	require.ErrorIs(t, err, store.ErrNotFound, "TTL of a missing key")

	k := e.key("k")
	require.NoError(t, s.Set(ctx, k, []byte("v"), 0))
	ttl, err := s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl, "TTL of a key without expiry")

	require.NoError(t, s.Set(ctx, k, []byte("v"), 1500*time.Millisecond))
	ttl, err = s.TTL(ctx, k)
	require.NoError(t, err)
	assert.True(t, ttl > 0 && ttl <= 1500*time.Millisecond, "TTL after Set with 1.5s: %v", ttl)
	assert.Zero(t, ttl%time.Millisecond, "TTL has millisecond resolution: %v", ttl)

	require.NoError(t, s.Set(ctx, k, []byte("v"), 0))
	ttl, err = s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl, "Set with ttl 0 removes an earlier expiry")

	ok, err := s.Expire(ctx, k, time.Hour)
	require.NoError(t, err)
	assert.True(t, ok)
	ttl, err = s.TTL(ctx, k)
	require.NoError(t, err)
	assert.True(t, ttl > 59*time.Minute && ttl <= time.Hour, "TTL after Expire 1h: %v", ttl)
	ok, err = s.Expire(ctx, k, 0)
	require.NoError(t, err)
	assert.True(t, ok, "Expire 0 on an existing key")
	ttl, err = s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl, "Expire 0 removes the expiry")
	ok, err = s.Expire(ctx, k, 0)
	require.NoError(t, err)
	assert.True(t, ok, "Expire 0 on a key without expiry still reports it exists")

	missing := e.key("missing2")
	for _, d := range []time.Duration{time.Hour, 0} {
		ok, err = s.Expire(ctx, missing, d)
		require.NoError(t, err)
		assert.False(t, ok, "Expire(%v) on a missing key", d)
	}
}

func testNegativeTTL(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	k := e.key("neg")
	assert.ErrorIs(t, s.Set(ctx, k, []byte("v"), -time.Second), store.ErrInvalidTTL, "Set")
	_, err := s.SetNX(ctx, k, []byte("v"), -1)
	assert.ErrorIs(t, err, store.ErrInvalidTTL, "SetNX")
	_, err = s.IncrBy(ctx, k, 1, -time.Millisecond)
	assert.ErrorIs(t, err, store.ErrInvalidTTL, "IncrBy")
	_, err = s.TTL(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound, "calls refused for a negative TTL wrote nothing")
	require.NoError(t, s.Set(ctx, k, []byte("v"), 0))
	_, err = s.Expire(ctx, k, -time.Second)
	assert.ErrorIs(t, err, store.ErrInvalidTTL, "Expire")
	ttl, err := s.TTL(ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl, "a refused Expire leaves the key as it was")
}

func testSubMillisecondTTL(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	const sub = 300 * time.Microsecond
	k, nx, ctr := e.key("set"), e.key("setnx"), e.key("incr")
	require.NoError(t, s.Set(ctx, k, []byte("v"), sub))
	ok, err := s.SetNX(ctx, nx, []byte("v"), sub)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = s.IncrBy(ctx, ctr, 1, sub)
	require.NoError(t, err)
	for _, key := range []string{k, nx, ctr} {
		ttl, err := s.TTL(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue // a real server may already have expired it: it did expire
		}
		require.NoError(t, err)
		assert.True(t, ttl > 0 && ttl <= time.Millisecond,
			"a sub-millisecond TTL is rounded up to 1ms, never to 'no expiry': %q has %v", key, ttl)
	}
	e.passTime(time.Millisecond)
	for _, key := range []string{k, nx, ctr} {
		e.waitGone(key, time.Millisecond)
	}
}

func testExpiry(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	const ttl = 200 * time.Millisecond
	str, ctr, h, keep := e.key("str"), e.key("ctr"), e.key("hash"), e.key("keep")
	require.NoError(t, s.Set(ctx, str, []byte("v"), ttl))
	_, err := s.IncrBy(ctx, ctr, 7, ttl)
	require.NoError(t, err)
	require.NoError(t, s.HSet(ctx, h, map[string][]byte{"f": []byte("v")}))
	ok, err := s.Expire(ctx, h, ttl)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Set(ctx, keep, []byte("v"), 0))

	e.passTime(ttl)
	for _, k := range []string{str, ctr, h} {
		e.waitGone(k, ttl)
	}
	_, err = s.Get(ctx, str)
	assert.ErrorIs(t, err, store.ErrNotFound, "Get of an expired key")
	_, err = s.HGetAll(ctx, h)
	assert.ErrorIs(t, err, store.ErrNotFound, "HGetAll of an expired hash")
	n, err := s.IncrBy(ctx, ctr, 1, time.Hour)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "an expired counter starts again from 0")
	d, err := s.TTL(ctx, ctr)
	require.NoError(t, err)
	assert.Greater(t, d, 59*time.Minute, "and is created again, with the new TTL")
	ok, err = s.SetNX(ctx, str, []byte("again"), 0)
	require.NoError(t, err)
	assert.True(t, ok, "SetNX wins over an expired key")
	_, err = s.Get(ctx, keep)
	assert.NoError(t, err, "a key without TTL stays")
}

func testInvalidKeys(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	long := e.prefix + ":" + strings.Repeat("x", store.MaxKeyLen)
	for name, k := range map[string]string{"empty": "", "too long": long} {
		_, err := s.Get(ctx, k)
		assert.ErrorIs(t, err, store.ErrInvalidKey, "Get, %s key", name)
		assert.ErrorIs(t, s.Set(ctx, k, []byte("v"), 0), store.ErrInvalidKey, "Set, %s key", name)
		_, err = s.IncrBy(ctx, k, 1, 0)
		assert.ErrorIs(t, err, store.ErrInvalidKey, "IncrBy, %s key", name)
		_, err = s.HGetAll(ctx, k)
		assert.ErrorIs(t, err, store.ErrInvalidKey, "HGetAll, %s key", name)
		_, err = s.MGet(ctx, e.tagged("ok"), k)
		assert.ErrorIs(t, err, store.ErrInvalidKey, "MGet, %s key", name)
		_, err = s.Eval(ctx, casScript, []string{k, k})
		assert.ErrorIs(t, err, store.ErrInvalidKey, "Eval, %s key", name)
	}
	largest := e.track(e.prefix + ":" + strings.Repeat("y", store.MaxKeyLen-len(e.prefix)-1))
	require.Len(t, largest, store.MaxKeyLen)
	require.NoError(t, s.Set(ctx, largest, []byte("v"), 0), "a key of exactly MaxKeyLen bytes")
	v, err := s.Get(ctx, largest)
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
}

// hostilePart returns a random key part built from bytes that break naive key
// schemes: separators, glob and hash-tag characters, whitespace, NUL, escapes,
// invalid UTF-8.
func hostilePart(r *rand.Rand) string {
	alphabet := []string{"*", "?", "[", "]", "{", "}", ":", "%", "%25", "\\", " ", "\n", "\r", "\t", "\x00",
		"\xff", "\xc3\x28", "é", "a", "B", "7", "-", ".", "_", "~", "karat", "{tenant}", "*:*"}
	n := r.IntN(12)
	var sb strings.Builder
	for range n {
		sb.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

func testHostileKeys(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	const seed = 20261128
	r := rand.New(rand.NewPCG(seed, seed))
	type input struct {
		tagged bool
		tag    string
		parts  []string
	}
	inputs := []input{
		{parts: []string{e.prefix, "tenant", strings.Repeat("\xff*{", 10_000/3)}}, // a 10 KB hostile id
		{parts: []string{e.prefix, "a:b"}}, {parts: []string{e.prefix, "a", "b"}},
		{parts: []string{e.prefix, ""}}, {parts: []string{e.prefix, "", ""}},
		{tagged: true, tag: e.prefix, parts: []string{"x"}}, {parts: []string{e.prefix, "{" + e.prefix + "}", "x"}},
	}
	for range 200 {
		in := input{parts: []string{e.prefix}}
		if r.IntN(3) == 0 {
			in = input{tagged: true, tag: e.prefix + hostilePart(r)}
		}
		for range 1 + r.IntN(3) {
			in.parts = append(in.parts, hostilePart(r))
		}
		inputs = append(inputs, in)
	}
	byKey := map[string]int{}
	seen := map[string]bool{}
	for i, in := range inputs {
		// The random inputs can repeat one another (an empty part, say):
		// only distinct inputs must give distinct keys.
		id := fmt.Sprintf("%v%q%q", in.tagged, in.tag, in.parts)
		if seen[id] {
			continue
		}
		seen[id] = true
		var k string
		var err error
		if in.tagged {
			k, err = store.TaggedKey(in.tag, in.parts...)
		} else {
			k, err = store.Key(in.parts...)
		}
		require.NoError(t, err, "input %d (seed %d)", i, seed)
		if j, dup := byKey[k]; dup {
			t.Fatalf("inputs %d %q and %d %q both encode to %q (seed %d)", j, inputs[j].parts, i, in.parts, k, seed)
		}
		byKey[k] = i
		body := k
		if in.tagged {
			body = k[strings.IndexByte(k, '}')+1:]
			sibling, err := store.TaggedKey(in.tag, "sibling")
			require.NoError(t, err)
			assert.Equal(t, store.Slot(sibling), store.Slot(k), "keys with one tag share a slot, whatever their parts")
		}
		assert.False(t, strings.ContainsAny(body, "*?[]\\{} \n\r\t\x00"), "key %q holds a glob, tag or blank character", k)
		tg, tag, parts, err := store.SplitKey(k)
		require.NoError(t, err)
		assert.Equal(t, in.tagged, tg)
		assert.Equal(t, in.tag, tag)
		assert.Equal(t, in.parts, parts, "SplitKey(Key(parts)) round trip (seed %d)", seed)
		e.track(k)
		require.NoError(t, s.Set(ctx, k, []byte(strconv.Itoa(i)), 0))
	}
	for k, i := range byKey {
		v, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(i), string(v), "each hostile key holds its own value")
	}
	_, err := store.Key(e.prefix, strings.Repeat("x", 10<<20))
	assert.ErrorIs(t, err, store.ErrInvalidKey, "a 10 MB id is refused")
	_, err = store.Key(e.prefix, strings.Repeat("x", store.MaxPartLen+1))
	assert.ErrorIs(t, err, store.ErrInvalidKey, "a part over MaxPartLen is refused")
}

func testCrossSlot(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	a := e.key("a")
	b := e.otherSlot(a)
	require.NoError(t, s.Set(ctx, a, []byte("1"), 0))
	require.NoError(t, s.Set(ctx, b, []byte("2"), 0))
	_, err := s.MGet(ctx, a, b)
	assert.ErrorIs(t, err, store.ErrCrossSlot, "MGet")
	_, err = s.Delete(ctx, a, b)
	assert.ErrorIs(t, err, store.ErrCrossSlot, "Delete")
	_, err = s.Eval(ctx, casScript, []string{a, b}, "1", "1000", "x")
	assert.ErrorIs(t, err, store.ErrCrossSlot, "Eval")
	for _, k := range []string{a, b} {
		_, err := s.Get(ctx, k)
		assert.NoError(t, err, "refused calls wrote nothing: %q still there", k)
	}
	ta, tb := e.tagged("a"), e.tagged("b")
	require.Equal(t, store.Slot(ta), store.Slot(tb))
	_, err = s.MGet(ctx, ta, tb)
	assert.NoError(t, err, "keys with one hash tag share a slot")
}

func testCanceledContext(e *env) {
	t, s := e.t, e.s
	k, h := e.tagged("k"), e.tagged("h")
	require.NoError(t, s.Set(e.ctx, k, []byte("before"), 0))
	require.NoError(t, s.HSet(e.ctx, h, map[string][]byte{"f": []byte("before")}))
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	fresh := e.tagged("fresh")
	calls := map[string]func() error{
		"Get":     func() error { _, err := s.Get(ctx, k); return err },
		"MGet":    func() error { _, err := s.MGet(ctx, k, h); return err },
		"Set":     func() error { return s.Set(ctx, k, []byte("after"), 0) },
		"SetNX":   func() error { _, err := s.SetNX(ctx, fresh, []byte("after"), 0); return err },
		"Delete":  func() error { _, err := s.Delete(ctx, k, h); return err },
		"HGet":    func() error { _, err := s.HGet(ctx, h, "f"); return err },
		"HSet":    func() error { return s.HSet(ctx, h, map[string][]byte{"f": []byte("after")}) },
		"HDel":    func() error { _, err := s.HDel(ctx, h, "f"); return err },
		"HGetAll": func() error { _, err := s.HGetAll(ctx, h); return err },
		"IncrBy":  func() error { _, err := s.IncrBy(ctx, fresh, 1, 0); return err },
		"Expire":  func() error { _, err := s.Expire(ctx, k, time.Millisecond); return err },
		"TTL":     func() error { _, err := s.TTL(ctx, k); return err },
		"Eval":    func() error { _, err := s.Eval(ctx, casScript, []string{fresh, h}, "0", "1000", "x"); return err },
		"Ping":    func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), context.Canceled, name)
	}
	v, err := s.Get(e.ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("before"), v)
	ttl, err := s.TTL(e.ctx, k)
	require.NoError(t, err)
	assert.Zero(t, ttl)
	all, err := s.HGetAll(e.ctx, h)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"f": []byte("before")}, all)
	_, err = s.TTL(e.ctx, fresh)
	assert.ErrorIs(t, err, store.ErrNotFound, "cancelled calls wrote nothing")
}

func testStalledServer(e *env) {
	st, ok := e.h.(Staller)
	if !ok {
		e.t.Skip("harness is not a Staller: no network to stall (memory driver) or none it can cut")
	}
	s, stall, err := st.StalledStore(e.ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		e.t.Skipf("harness cannot stall this target: %v", err)
	}
	require.NoError(e.t, err)
	k := e.key("k")
	require.NoError(e.t, s.Set(e.ctx, k, []byte("v"), 0), "before the stall")
	stall()
	const deadline = 300 * time.Millisecond
	for name, call := range map[string]func(context.Context) error{
		"Get": func(ctx context.Context) error { _, err := s.Get(ctx, k); return err },
		"Set": func(ctx context.Context) error { return s.Set(ctx, k, []byte("w"), 0) },
		"Eval": func(ctx context.Context) error {
			_, err := s.Eval(ctx, casScript, []string{k, k}, "0", "1", "x")
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(e.ctx, deadline)
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			e.t.Logf("%s against a stalled server returned after %v", name, time.Since(start).Round(time.Millisecond))
			assert.ErrorIs(e.t, err, store.ErrUnavailable, name)
			assert.ErrorIs(e.t, err, context.DeadlineExceeded, name)
		case <-time.After(deadline + 10*time.Second):
			e.t.Errorf("%s against a stalled server did not return within 10s of its %v deadline", name, deadline)
		}
		cancel()
	}
}

func testClose(e *env) {
	t, ctx := e.t, e.ctx
	s := e.newStore()
	k, h := e.tagged("k"), e.tagged("h")
	require.NoError(t, s.Set(ctx, k, []byte("v"), 0))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice")
	checks := map[string]error{
		"Ping": s.Ping(ctx),
		"Set":  s.Set(ctx, k, []byte("v"), 0),
		"HSet": s.HSet(ctx, h, map[string][]byte{"f": nil}),
	}
	_, checks["Get"] = s.Get(ctx, k)
	_, checks["MGet"] = s.MGet(ctx, k)
	_, checks["SetNX"] = s.SetNX(ctx, k, nil, 0)
	_, checks["Delete"] = s.Delete(ctx, k)
	_, checks["HGet"] = s.HGet(ctx, h, "f")
	_, checks["HDel"] = s.HDel(ctx, h, "f")
	_, checks["HGetAll"] = s.HGetAll(ctx, h)
	_, checks["IncrBy"] = s.IncrBy(ctx, k, 1, 0)
	_, checks["Expire"] = s.Expire(ctx, k, 0)
	_, checks["TTL"] = s.TTL(ctx, k)
	_, checks["Eval"] = s.Eval(ctx, casScript, []string{k, h}, "0", "1", "x")
	if c, ok := store.Capability[store.CachedReader](s); ok {
		_, checks["GetCached"] = c.GetCached(ctx, k, time.Second)
		_, checks["GetCachedString"] = store.CachedStrings(c).GetCachedString(ctx, k, time.Second)
	}
	if c, ok := store.Capability[store.Scanner](s); ok {
		checks["Scan"] = c.Scan(ctx, e.prefix, func([]string) error { return nil })
	}
	for name, err := range checks {
		assert.ErrorIs(t, err, store.ErrClosed, "%s after Close", name)
	}
}

func testUserClientStaysOpen(e *env) {
	co, ok := e.h.(ClientOwner)
	if !ok {
		e.t.Skip("harness is not a ClientOwner: the driver takes no user client")
	}
	s, works, err := co.StoreOverClient(e.ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		e.t.Skipf("harness cannot make a user client here: %v", err)
	}
	require.NoError(e.t, err)
	k := e.key("k")
	require.NoError(e.t, s.Set(e.ctx, k, []byte("v"), 0))
	require.NoError(e.t, s.Close())
	_, err = s.Get(e.ctx, k)
	assert.ErrorIs(e.t, err, store.ErrClosed, "the store is closed")
	assert.NoError(e.t, works(e.ctx), "the user's client still works after the store is closed")
}

// cachedReader returns s's CachedReader with its reads alternating between
// GetCached and the string form (store.CachedStrings), so that every cached
// read case holds both to the same bounds.
func cachedReader(e *env, s store.Store) store.CachedReader {
	cr := needCap[store.CachedReader](e, s, store.CapCachedReads)
	return &alternatingReader{cr: cr, sr: store.CachedStrings(cr)}
}

type alternatingReader struct {
	cr store.CachedReader
	sr store.CachedStringReader
	n  atomic.Uint64
}

func (a *alternatingReader) GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error) {
	if a.n.Add(1)%2 == 0 {
		v, err := a.sr.GetCachedString(ctx, key, maxStale)
		if err != nil {
			return nil, err
		}
		return []byte(v), nil
	}
	return a.cr.GetCached(ctx, key, maxStale)
}

func testCachedReads(e *env) {
	a := cachedReader(e, e.s)
	t, ctx := e.t, e.ctx
	const maxStale = time.Minute
	k := e.key("ryw")
	_, err := a.GetCached(ctx, k, maxStale)
	require.ErrorIs(t, err, store.ErrNotFound, "GetCached of a missing key")
	require.NoError(t, e.s.Set(ctx, k, []byte("v1"), 0))
	for range 3 { // the second and third reads may come from the cache
		v, err := a.GetCached(ctx, k, maxStale)
		require.NoError(t, err)
		require.Equal(t, []byte("v1"), v, "read-your-writes after Set")
	}
	require.NoError(t, e.s.Set(ctx, k, []byte("v2"), 0))
	v, err := a.GetCached(ctx, k, maxStale)
	require.NoError(t, err)
	require.Equal(t, []byte("v2"), v, "read-your-writes after an overwrite")
	_, err = e.s.Delete(ctx, k)
	require.NoError(t, err)
	_, err = a.GetCached(ctx, k, maxStale)
	require.ErrorIs(t, err, store.ErrNotFound, "read-your-writes after Delete")
	_, err = e.s.IncrBy(ctx, k, 5, 0)
	require.NoError(t, err)
	v, err = a.GetCached(ctx, k, maxStale)
	require.NoError(t, err)
	require.Equal(t, []byte("5"), v, "read-your-writes after IncrBy")
	_, err = e.s.Eval(ctx, casScript, []string{e.tagged("cas"), e.tagged("audit")}, "0", "60000", "x")
	require.NoError(t, err)
	v, err = a.GetCached(ctx, e.tagged("cas"), maxStale)
	require.NoError(t, err)
	require.Equal(t, []byte("1"), v, "read-your-writes after Eval")

	b := e.newStore()
	k2 := e.key("plain")
	require.NoError(t, b.Set(ctx, k2, []byte("old"), 0))
	_, err = a.GetCached(ctx, k2, maxStale)
	require.NoError(t, err)
	require.NoError(t, b.Set(ctx, k2, []byte("new"), 0))
	v, err = e.s.Get(ctx, k2)
	require.NoError(t, err)
	assert.Equal(t, []byte("new"), v, "plain Get always asks the server")
}

func testCachedReadsOtherWriter(e *env) {
	a := cachedReader(e, e.s)
	t, ctx := e.t, e.ctx
	b := e.newStore()
	for _, maxStale := range []time.Duration{300 * time.Millisecond, 50 * time.Millisecond} {
		k := e.key("other-" + maxStale.String())
		require.NoError(t, b.Set(ctx, k, []byte("old"), 0))
		for range 2 {
			v, err := a.GetCached(ctx, k, maxStale)
			require.NoError(t, err)
			require.Equal(t, []byte("old"), v)
		}
		require.NoError(t, b.Set(ctx, k, []byte("new"), 0))
		written := time.Now()
		var firstNew time.Duration = -1
		for {
			start := time.Now()
			v, err := a.GetCached(ctx, k, maxStale)
			require.NoError(t, err)
			if string(v) == "new" && firstNew < 0 {
				firstNew = time.Since(written)
			}
			if start.Sub(written) > maxStale {
				// The bound: a call that starts more than maxStale after the
				// write returned must not see the old value.
				require.Equal(t, "new", string(v), "a read that began %v after another instance's write (maxStale %v)", start.Sub(written), maxStale)
				break
			}
			if string(v) == "old" {
				require.Less(t, firstNew, time.Duration(0), "the old value came back after the new one was seen")
			}
		}
		t.Logf("maxStale %v: another instance's write first seen after %v", maxStale, firstNew)
	}
}

// testCachedReadsPartition: the staleness bound must hold when the reader's
// connection goes silent, so that no invalidation can reach it: after
// maxStale, GetCached returns the new value or an error, never the old one.
func testCachedReadsPartition(e *env) {
	needCap[store.CachedReader](e, e.s, store.CapCachedReads)
	pt, ok := e.h.(Partitioner)
	if !ok {
		e.t.Skip("harness is not a Partitioner: it cannot cut the reader off alone")
	}
	t, ctx := e.t, e.ctx
	s, stall, err := pt.PartitionedStore(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("harness cannot stall this target: %v", err)
	}
	require.NoError(t, err)
	a := cachedReader(e, s) // the partitioned store too
	b := e.newStore()
	const maxStale = 300 * time.Millisecond
	k := e.key("partitioned")
	require.NoError(t, b.Set(ctx, k, []byte("old"), 0))
	for range 2 {
		v, err := a.GetCached(ctx, k, maxStale)
		require.NoError(t, err)
		require.Equal(t, []byte("old"), v)
	}
	stall()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, b.Set(wctx, k, []byte("new"), 0))
	cancel()
	written := time.Now()
	var old, failed int
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for checked := 0; checked < 3; <-tick.C {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		v, err := a.GetCached(rctx, k, maxStale)
		cancel()
		switch {
		case err != nil:
			failed++
		case string(v) == "old":
			old++
		}
		if start.Sub(written) > maxStale {
			require.False(t, err == nil && string(v) == "old",
				"a read that began %v after the write, with maxStale %v, returned the old value", start.Sub(written), maxStale)
			checked++
		}
	}
	t.Logf("under partition: %d reads served the old value within maxStale, %d failed", old, failed)
}

func testScan(e *env) {
	sc := needCap[store.Scanner](e, e.s, store.CapScan)
	t, ctx := e.t, e.ctx
	want := map[string]bool{}
	for i := range 60 {
		k := e.key("scan:" + strconv.Itoa(i)) // ':' is encoded: the prefix below is literal
		require.NoError(t, e.s.Set(ctx, k, []byte("v"), 0))
		want[k] = true
	}
	require.NoError(t, e.s.Set(ctx, e.key("scanx"), []byte("v"), 0))
	prefix, err := store.Key(e.prefix, "")
	require.NoError(t, err)
	prefix += "scan%3A"
	got := map[string]bool{}
	require.NoError(t, sc.Scan(ctx, prefix, func(keys []string) error {
		for _, k := range keys {
			got[k] = true
		}
		return nil
	}))
	assert.Equal(t, want, got, "Scan finds every key with the prefix, on every master, and no other")

	star, plain := e.track(e.prefix+":raw*x:1"), e.track(e.prefix+":rawAx:1")
	require.NoError(t, e.s.Set(ctx, star, []byte("v"), 0))
	require.NoError(t, e.s.Set(ctx, plain, []byte("v"), 0))
	got = map[string]bool{}
	require.NoError(t, sc.Scan(ctx, e.prefix+":raw*", func(keys []string) error {
		for _, k := range keys {
			got[k] = true
		}
		return nil
	}))
	assert.Equal(t, map[string]bool{star: true}, got, "glob characters in a prefix are literal")

	stop := errors.New("stop")
	assert.ErrorIs(t, sc.Scan(ctx, prefix, func([]string) error { return stop }), stop, "fn's error stops the scan")
}

func testStats(e *env) {
	sr := needCap[store.StatsReporter](e, e.s, store.CapStats)
	t, ctx := e.t, e.ctx
	k := e.key("k")
	before := sr.Stats()
	_, _ = e.s.Get(ctx, k)
	require.NoError(t, e.s.Set(ctx, k, []byte("v"), 0))
	_, err := e.s.HGet(ctx, k, "f")
	require.ErrorIs(t, err, store.ErrWrongType)
	after := sr.Stats()
	assert.EqualValues(t, 3, after.Calls-before.Calls, "Calls counts each call once")
	assert.EqualValues(t, 1, after.Errors-before.Errors, "Errors counts the failed call, not the not-found one")
}

func testCap(e *env) {
	cp, ok := e.h.(Capper)
	if !ok {
		e.t.Skip("harness is not a Capper: only the memory driver has a key cap")
	}
	t, ctx := e.t, e.ctx
	s, err := cp.CappedStore(ctx, 3)
	require.NoError(t, err)
	defer s.Close()
	exists := func(k string) bool {
		_, err := s.TTL(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		require.NoError(t, err)
		return true
	}
	require.NoError(t, s.Set(ctx, "x", []byte("1"), time.Hour))
	require.NoError(t, s.Set(ctx, "y", []byte("1"), time.Hour))
	require.NoError(t, s.Set(ctx, "p", []byte("1"), 0))
	_, err = s.Get(ctx, "x") // x is now more recently used than y
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "q", []byte("1"), 0), "at the cap, a key with a TTL is evicted")
	assert.False(t, exists("y"), "the least recently used key with a TTL went")
	assert.True(t, exists("x"))
	require.NoError(t, s.Set(ctx, "r", []byte("1"), 0))
	assert.False(t, exists("x"), "then the next one with a TTL")
	for _, k := range []string{"p", "q", "r"} {
		assert.True(t, exists(k), "keys without TTL are never evicted: %s", k)
	}
	assert.ErrorIs(t, s.Set(ctx, "s", []byte("1"), 0), store.ErrFull, "nothing evictable: Set refused")
	_, err = s.SetNX(ctx, "s", []byte("1"), time.Hour)
	assert.ErrorIs(t, err, store.ErrFull, "SetNX refused")
	_, err = s.IncrBy(ctx, "s", 1, 0)
	assert.ErrorIs(t, err, store.ErrFull, "IncrBy refused")
	assert.ErrorIs(t, s.HSet(ctx, "s", map[string][]byte{"f": nil}), store.ErrFull, "HSet refused")
	_, err = s.Eval(ctx, casScript, []string{"{t}s", "{t}a"}, "0", "1000", "x")
	assert.ErrorIs(t, err, store.ErrFull, "a script that would add keys is refused")
	for _, k := range []string{"s", "{t}s", "{t}a"} {
		assert.False(t, exists(k), "refused writes wrote nothing: %s", k)
	}
	require.NoError(t, s.Set(ctx, "p", []byte("overwrite"), 0), "overwriting an existing key needs no room")
	v, err := s.Get(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, []byte("overwrite"), v)
}
