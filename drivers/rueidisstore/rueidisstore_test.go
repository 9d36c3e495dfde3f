package rueidisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/rueidisstore"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// newClient returns a single-node client of addr, closed at the end of the
// test.
func newClient(t *testing.T, addr string, cache bool) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      !cache,
		ConnWriteTimeout:  2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// cachedStore returns a caching store over a client of its own.
func cachedStore(t *testing.T, addr string) *rueidisstore.CachedStore {
	t.Helper()
	s := rueidisstore.New(newClient(t, addr, true), nil).(*rueidisstore.CachedStore)
	t.Cleanup(func() { s.Close() })
	return s
}

// miniStore returns a store over a fresh miniredis, which needs the cache off.
func miniStore(t *testing.T) store.Store {
	t.Helper()
	m := miniredis.RunT(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, DisableCache: true, ForceSingleClient: true})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return rueidisstore.New(c, &rueidisstore.Options{DisableCache: true})
}

// keyer returns a function that makes keys under a tag of the test's own, so
// that tests share a server without meeting and a test's keys share a slot.
func keyer(t *testing.T) func(name string) string {
	t.Helper()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return func(name string) string {
		k, err := store.TaggedKey(hex.EncodeToString(nonce[:]), "karat-test", "rueidisstore", t.Name(), name)
		require.NoError(t, err)
		return k
	}
}

// backends runs fn over miniredis and over a real Redis.
func backends(t *testing.T, fn func(t *testing.T, s store.Store)) {
	t.Run("miniredis", func(t *testing.T) { fn(t, miniStore(t)) })
	t.Run("redis", func(t *testing.T) { fn(t, cachedStore(t, redistest.Single(t).Addr)) })
}

func TestScriptReplies(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		k := keyer(t)("k")
		for _, c := range []struct {
			lua  string
			want store.Value
		}{
			{`return {1, 'two', {3, {''}}, false, 'after-false'}`, store.ArrayValue(store.IntValue(1), store.StringValue("two"),
				store.ArrayValue(store.IntValue(3), store.ArrayValue(store.StringValue(""))), store.NilValue(), store.StringValue("after-false"))},
			{`return {1, nil, 3}`, store.ArrayValue(store.IntValue(1))},
			{`return {}`, store.ArrayValue()},
			{`return nil`, store.NilValue()},
			{`return false`, store.NilValue()}, // RESP3 false from Redis 7
			{`return true`, store.IntValue(1)}, // RESP3 true from Redis 7
			{`return -7.9`, store.IntValue(-7)},
			{`return ''`, store.StringValue("")},
			{`return redis.status_reply('FINE')`, store.StringValue("FINE")},
			{`return redis.call('GET', KEYS[1])`, store.NilValue()},
		} {
			got, err := s.Eval(ctx, store.NewScript("t", c.lua, nil), []string{k})
			require.NoError(t, err, c.lua)
			assert.True(t, c.want.Equal(got), "%s: got %s, want %s", c.lua, got, c.want)
			if c.want.Kind == store.KindBytes {
				assert.NotNil(t, got.Bytes, "%s: bytes are never nil", c.lua)
			}
		}
	})
}

func TestScriptErrors(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		k := keyer(t)("hash")
		require.NoError(t, s.HSet(ctx, k, map[string][]byte{"f": []byte("v")}))

		var se *store.ScriptError
		for _, msg := range []string{"CONFLICT have 3", "ERR kept as sent"} {
			_, err := s.Eval(ctx, store.NewScript("raise", `return redis.error_reply(ARGV[1])`, nil), []string{k}, msg)
			require.ErrorAs(t, err, &se)
			assert.Equal(t, msg, se.Message, "rueidis strips ERR from its errors; the driver must not")
		}

		_, err := s.Eval(ctx, store.NewScript("wrongtype", `return redis.call('INCR', KEYS[1])`, nil), []string{k})
		require.ErrorIs(t, err, store.ErrWrongType)
		assert.False(t, errors.As(err, &se), "a command's error is not the body's: %v", err)

		_, err = s.IncrBy(ctx, k, 1, time.Minute)
		require.ErrorIs(t, err, store.ErrWrongType, "IncrBy with a TTL runs a script")
		str := keyer(t)("str")
		require.NoError(t, s.Set(ctx, str, []byte("x"), 0))
		_, err = s.IncrBy(ctx, str, 1, time.Minute)
		require.ErrorIs(t, err, store.ErrNotInteger)
		_, err = s.IncrBy(ctx, str, 1, 0)
		require.ErrorIs(t, err, store.ErrNotInteger)
	})
}

func TestValues(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		key := keyer(t)
		k := key("empty")
		require.NoError(t, s.Set(ctx, k, []byte{}, 0))
		v, err := s.Get(ctx, k)
		require.NoError(t, err)
		assert.NotNil(t, v, "an empty value reads back as non-nil")
		assert.Empty(t, v)

		vs, err := s.MGet(ctx, k, key("missing"))
		require.NoError(t, err)
		assert.NotNil(t, vs[0])
		assert.Nil(t, vs[1])

		h := key("hash")
		require.NoError(t, s.HSet(ctx, h, map[string][]byte{"e": {}}))
		m, err := s.HGetAll(ctx, h)
		require.NoError(t, err)
		assert.NotNil(t, m["e"])
		_, err = s.HGetAll(ctx, key("missing"))
		require.ErrorIs(t, err, store.ErrNotFound)

		// A value the caller changes after Set is not what was stored.
		buf := []byte("abc")
		require.NoError(t, s.Set(ctx, k, buf, 0))
		buf[0] = 'X'
		v, err = s.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, "abc", string(v))
	})
}

func TestNew(t *testing.T) {
	s := miniStore(t)
	_, ok := store.Capability[store.CachedReader](s)
	assert.False(t, ok, "DisableCache: no GetCached")
	assert.Equal(t, []string{store.CapScan, store.CapStats, store.CapUsage}, store.Capabilities(s))

	var c rueidis.Client
	require.True(t, s.As(&c))
	assert.NotNil(t, c)
	var other *int
	assert.False(t, s.As(&other))

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	require.ErrorIs(t, s.Ping(context.Background()), store.ErrClosed)
	require.NoError(t, c.Do(context.Background(), c.B().Ping().Build()).Error(), "a user's client stays open")
}

func TestCloseClient(t *testing.T) {
	m := miniredis.RunT(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, DisableCache: true, ForceSingleClient: true})
	require.NoError(t, err)
	s := rueidisstore.New(c, &rueidisstore.Options{DisableCache: true, CloseClient: true})
	require.NoError(t, s.Close())
	require.Error(t, c.Do(context.Background(), c.B().Ping().Build()).Error(), "CloseClient closes the client")
}

func TestCrossSlotRefusedBeforeSending(t *testing.T) {
	m := miniredis.RunT(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, DisableCache: true, ForceSingleClient: true})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	s := rueidisstore.New(c, &rueidisstore.Options{DisableCache: true})
	ctx := context.Background()
	before := m.TotalConnectionCount()
	cmds := m.CommandCount()
	_, err = s.MGet(ctx, "a", "b")
	require.ErrorIs(t, err, store.ErrCrossSlot)
	_, err = s.Delete(ctx, "a", "b")
	require.ErrorIs(t, err, store.ErrCrossSlot)
	_, err = s.Eval(ctx, store.NewScript("t", "return 1", nil), []string{"a", "b"})
	require.ErrorIs(t, err, store.ErrCrossSlot)
	assert.Equal(t, cmds, m.CommandCount(), "nothing was sent")
	assert.Equal(t, before, m.TotalConnectionCount())
}

// cacheStats returns s's hit and miss counters.
func cacheStats(s store.StatsReporter) (hits, misses uint64) {
	st := s.Stats()
	return st.CacheHits, st.CacheMisses
}

func TestGetCached(t *testing.T) {
	addr := redistest.Single(t).Addr
	a, b := cachedStore(t, addr), cachedStore(t, addr)
	ctx := context.Background()
	k := keyer(t)("k")

	_, err := a.GetCached(ctx, k, time.Minute)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, b.Set(ctx, k, []byte("v1"), 0))
	pollCached(t, a, k, time.Minute, "v1")

	h0, m0 := cacheStats(a)
	v, err := a.GetCached(ctx, k, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "v1", string(v))
	h1, m1 := cacheStats(a)
	assert.Equal(t, [2]uint64{h0 + 1, m0}, [2]uint64{h1, m1}, "a second read is a hit")

	_, err = a.GetCached(ctx, k, 0)
	require.NoError(t, err)
	h2, m2 := cacheStats(a)
	assert.Equal(t, [2]uint64{h1, m1 + 1}, [2]uint64{h2, m2}, "maxStale 0 asks the server")

	_, err = a.Get(ctx, k)
	require.NoError(t, err)
	h3, m3 := cacheStats(a)
	assert.Equal(t, [2]uint64{h2, m2}, [2]uint64{h3, m3}, "Get is not GetCached")

	h := keyer(t)("hash")
	require.NoError(t, a.HSet(ctx, h, map[string][]byte{"f": []byte("v")}))
	_, err = b.GetCached(ctx, h, time.Minute)
	require.ErrorIs(t, err, store.ErrWrongType)
}

// pollCached calls GetCached until it returns want, up to a deadline.
func pollCached(t *testing.T, s store.CachedReader, key string, maxStale time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := s.GetCached(context.Background(), key, maxStale)
		if err == nil && string(v) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetCached(%s) = %q, %v; want %q within 5s", key, v, err, want)
		}
	}
}

func TestReadYourWrites(t *testing.T) {
	addr := redistest.Single(t).Addr
	a, b := cachedStore(t, addr), cachedStore(t, addr)
	ctx := context.Background()
	key := keyer(t)
	incr := store.NewScript("incr", `return redis.call('INCR', KEYS[1])`, nil)

	writes := map[string]func(k string) error{
		"Set": func(k string) error { return a.Set(ctx, k, []byte("mine"), 0) },
		"SetNX": func(k string) error {
			_, err := a.Delete(ctx, k)
			require.NoError(t, err)
			_, err = a.SetNX(ctx, k, []byte("mine"), time.Minute)
			return err
		},
		"Delete": func(k string) error { _, err := a.Delete(ctx, k); return err },
		"IncrBy": func(k string) error { _, err := a.IncrBy(ctx, k, 1, 0); return err },
		"IncrByTTL": func(k string) error {
			_, err := a.IncrBy(ctx, k, 1, time.Minute)
			return err
		},
		"Expire":  func(k string) error { _, err := a.Expire(ctx, k, time.Minute); return err },
		"Persist": func(k string) error { _, err := a.Expire(ctx, k, 0); return err },
		"Eval":    func(k string) error { _, err := a.Eval(ctx, incr, []string{k}); return err },
	}
	for name, write := range writes {
		k := key(name)
		require.NoError(t, b.Set(ctx, k, []byte("7"), 0))
		_, err := a.GetCached(ctx, k, time.Minute) // fill a's cache
		require.NoError(t, err)
		require.NoError(t, write(k), name)
		want, err := b.Get(ctx, k)
		if err != nil {
			require.ErrorIs(t, err, store.ErrNotFound)
		}
		// Each read after the write asks the server, not only the first
		// (which the invalidation might have caused): the write record does.
		for range 3 {
			_, m0 := cacheStats(a)
			v, err := a.GetCached(ctx, k, time.Minute)
			if want == nil {
				require.ErrorIs(t, err, store.ErrNotFound, name)
			} else {
				require.NoError(t, err, name)
				assert.Equal(t, string(want), string(v), name)
			}
			_, m1 := cacheStats(a)
			assert.Equal(t, m0+1, m1, "%s: a read of a key this store wrote asks the server", name)
		}
	}

	// HSet and HDel are writes too; GetCached of a hash is WRONGTYPE, so
	// check the record through a key that turns into a string.
	k := key("hash")
	require.NoError(t, a.HSet(ctx, k, map[string][]byte{"f": []byte("v")}))
	_, m0 := cacheStats(a)
	_, err := a.GetCached(ctx, k, time.Minute)
	require.ErrorIs(t, err, store.ErrWrongType)
	_, m1 := cacheStats(a)
	assert.Equal(t, m0+1, m1)

	// Another store's write reaches a through the invalidation.
	k = key("other")
	require.NoError(t, b.Set(ctx, k, []byte("old"), 0))
	pollCached(t, a, k, time.Minute, "old")
	require.NoError(t, b.Set(ctx, k, []byte("new"), 0))
	pollCached(t, a, k, time.Minute, "new")
}

// TestPessimisticAge checks that an entry filled with a long maxStale is not
// served to a call with a shorter one once it may be older than that.
func TestPessimisticAge(t *testing.T) {
	addr := redistest.Single(t).Addr
	a, b := cachedStore(t, addr), cachedStore(t, addr)
	ctx := context.Background()
	k := keyer(t)("k")
	require.NoError(t, b.Set(ctx, k, []byte("v"), 0))

	const long, short = 10 * time.Second, 100 * time.Millisecond
	before := time.Now()
	_, err := a.GetCached(ctx, k, long)
	require.NoError(t, err)
	filled := time.Now() // the entry was filled between before and filled
	deadline := filled.Add(5 * time.Second)
	for {
		start := time.Now()
		h0, _ := cacheStats(a)
		_, err := a.GetCached(ctx, k, short)
		require.NoError(t, err)
		h1, _ := cacheStats(a)
		if h1 == h0 {
			// rueidis keeps expiry instants in whole milliseconds.
			require.GreaterOrEqual(t, time.Since(before), short-2*time.Millisecond, "a fresh entry was not served")
			break
		}
		require.LessOrEqual(t, start.Sub(filled), short, "an entry older than maxStale was served")
		require.True(t, time.Now().Before(deadline), "the entry was served for %v", time.Since(filled))
	}
	h0, _ := cacheStats(a)
	_, err = a.GetCached(ctx, k, long)
	require.NoError(t, err)
	h1, _ := cacheStats(a)
	assert.Equal(t, h0+1, h1, "the entry is still good for the long maxStale")
}

func TestMaxStaleClamped(t *testing.T) {
	addr := redistest.Single(t).Addr
	s := rueidisstore.New(newClient(t, addr, true), &rueidisstore.Options{MaxStale: 50 * time.Millisecond}).(*rueidisstore.CachedStore)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	k := keyer(t)("k")
	require.NoError(t, cachedStore(t, addr).Set(ctx, k, []byte("v"), 0))
	_, err := s.GetCached(ctx, k, time.Hour)
	require.NoError(t, err)
	filled := time.Now()
	for {
		start := time.Now()
		h0, _ := cacheStats(s)
		_, err := s.GetCached(ctx, k, time.Hour)
		require.NoError(t, err)
		if h1, _ := cacheStats(s); h1 == h0 {
			return
		}
		require.LessOrEqual(t, start.Sub(filled), 50*time.Millisecond, "maxStale was not clamped to Options.MaxStale")
	}
}

func TestWriteRecordBounded(t *testing.T) {
	addr := redistest.Single(t).Addr
	a := cachedStore(t, addr)
	ctx := context.Background()
	key := keyer(t)

	assert.Zero(t, rueidisstore.RecordedWrites(a), "nothing recorded before any GetCached")
	const window = 30 * time.Millisecond
	_, err := a.GetCached(ctx, key("any"), window)
	require.ErrorIs(t, err, store.ErrNotFound)
	for i := range 200 {
		require.NoError(t, a.Set(ctx, key(fmt.Sprint(i)), []byte("v"), 0))
	}
	assert.Positive(t, rueidisstore.RecordedWrites(a))
	deadline := time.Now().Add(5 * time.Second)
	for rueidisstore.RecordedWrites(a) > 1 {
		require.True(t, time.Now().Before(deadline), "%d writes still recorded", rueidisstore.RecordedWrites(a))
		require.NoError(t, a.Set(ctx, key("tick"), []byte("v"), 0))
	}
}

func TestWriteRecordCapped(t *testing.T) {
	defer rueidisstore.SetMaxShardKeys(2)()
	addr := redistest.Single(t).Addr
	a := cachedStore(t, addr)
	ctx := context.Background()
	key := keyer(t)

	_, err := a.GetCached(ctx, key("any"), time.Minute)
	require.ErrorIs(t, err, store.ErrNotFound)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = key(fmt.Sprint(i))
		require.NoError(t, a.Set(ctx, keys[i], []byte("v"), 0))
	}
	assert.LessOrEqual(t, rueidisstore.RecordedWrites(a), 64*2)
	// Twice: the first read refills the cache, the second would hit it.
	for _, k := range keys {
		for range 2 {
			_, m0 := cacheStats(a)
			_, err := a.GetCached(ctx, k, time.Minute)
			require.NoError(t, err)
			_, m1 := cacheStats(a)
			require.Equal(t, m0+1, m1, "a key forgotten by a full shard still reads from the server")
		}
	}
}

// TestPartition cuts a caching store off its server without closing the
// connection, and checks it never serves a value older than maxStale.
func TestPartition(t *testing.T) {
	srv := redistest.Single(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	a, b := cachedStore(t, proxy.Addr), cachedStore(t, srv.Addr)
	ctx := context.Background()
	k := keyer(t)("k")

	const maxStale = 300 * time.Millisecond
	require.NoError(t, b.Set(ctx, k, []byte("old"), 0))
	pollCached(t, a, k, maxStale, "old")
	proxy.Stall()
	t.Cleanup(proxy.Resume)
	require.NoError(t, b.Set(ctx, k, []byte("new"), 0))
	written := time.Now()

	var failed bool
	for time.Since(written) < maxStale+time.Second {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		v, err := a.GetCached(cctx, k, maxStale)
		cancel()
		if err != nil {
			if !errors.Is(err, store.ErrUnavailable) {
				// On a loaded machine the 50 ms can be over before the call
				// starts; the contract then returns the context's own error.
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			failed = true
			continue
		}
		if string(v) == "old" {
			require.LessOrEqual(t, time.Since(written), maxStale, "a value older than maxStale was served")
		}
	}
	assert.True(t, failed, "the partitioned store kept answering")
}
