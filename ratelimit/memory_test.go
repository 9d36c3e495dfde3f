package ratelimit_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

// TestMemoryDriverStaysWithinItsCap: many more subjects than the memory
// store may hold; every limiter key carries a TTL, so the store evicts the
// least recently used ones instead of refusing, and never holds more than
// its cap. (An evicted subject starts afresh: size the cap for the active
// subjects of one window.)
func TestMemoryDriverStaysWithinItsCap(t *testing.T) {
	if testing.Short() {
		t.Skip("60,000 decisions")
	}
	const capEntries, subjects = 20_000, 60_000
	s := memstore.New(&memstore.Options{MaxEntries: capEntries})
	defer s.Close()
	l := ratelimit.New(s, &ratelimit.Options{BlockedKeys: 1000})
	ctx := context.Background()
	p := ratelimit.Policy{Name: "p", Limit: 10, Window: time.Minute}
	for i := range subjects {
		d, err := l.Allow(ctx, p, "user:"+strconv.Itoa(i), 1)
		require.NoError(t, err)
		require.NoError(t, d.Degraded)
		require.True(t, d.Allowed)
	}
	st, ok := store.Capability[store.StatsReporter](s)
	require.True(t, ok)
	stats := st.Stats()
	assert.LessOrEqual(t, stats.Keys, int64(capEntries))
	assert.GreaterOrEqual(t, stats.Evictions, uint64(subjects-capEntries))
	// A recent subject is still counted.
	d, err := l.Allow(ctx, p, "user:"+strconv.Itoa(subjects-1), 1)
	require.NoError(t, err)
	assert.Equal(t, int64(8), d.Remaining)
}

// TestMillionKeysWithinCap drives a million distinct subjects (100,000
// under -race or -short) through a limiter over a memory store with a
// MaxBytes cap far below what they would take, interleaved with 100 hot
// subjects that keep coming back. The store never reports more than its
// cap; it evicts (least recently used first) to stay there; the hot
// subjects, used recently, are never evicted, so each is admitted exactly
// its limit however many one-shot subjects flood the store; and a one-shot
// subject that was evicted is admitted again although its window has not
// passed: that is what eviction under a cap means for a limit (the package
// doc says so).
func TestMillionKeysWithinCap(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 100_000
	}
	capBytes := int64(n) * 8 // room for about 7% of the subjects
	const hot, every = 100, 1000
	clock := memstore.NewFakeClock(time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC))
	s := memstore.New(&memstore.Options{MaxBytes: capBytes, Clock: clock})
	defer s.Close()
	_, ok := store.Capability[store.Int64Updater](s)
	require.True(t, ok, "the in-process path is what this test drives")
	l := ratelimit.New(s, &ratelimit.Options{Clock: clock.Now})
	ctx := context.Background()
	p := ratelimit.Policy{Name: "p", Limit: 5, Window: time.Hour}
	usage := func() store.Usage {
		u, err := s.Usage(ctx)
		require.NoError(t, err)
		return u
	}
	hotAdmitted := make([]int, hot)
	for i := range n {
		// A one-shot subject takes its whole bucket at once.
		d, err := l.Allow(ctx, p, "once:"+strconv.Itoa(i), 5)
		require.NoError(t, err)
		require.NoError(t, d.Degraded)
		require.True(t, d.Allowed, "a fresh subject")
		if i%every == 0 {
			for h := range hot {
				d, err := l.Allow(ctx, p, "hot:"+strconv.Itoa(h), 1)
				require.NoError(t, err)
				require.NoError(t, d.Degraded)
				if d.Allowed {
					hotAdmitted[h]++
				}
			}
		}
		if i%(n/10) == 0 {
			require.LessOrEqual(t, usage().Bytes, capBytes, "after %d subjects", i)
		}
		clock.Advance(time.Microsecond) // a second in all: no bucket refills (T = 12 min)
	}
	u := usage()
	t.Logf("%d subjects: the store holds %d keys, %d bytes (cap %d); %+v", n, u.Keys, u.Bytes, capBytes, s.Stats())
	require.LessOrEqual(t, u.Bytes, capBytes)
	require.Less(t, u.Keys, int64(n/4), "most subjects were evicted")
	require.Greater(t, s.Stats().Evictions, uint64(n/2))
	for h, got := range hotAdmitted {
		require.Equal(t, 5, got, "hot subject %d: admitted exactly its limit", h)
	}
	// The first one-shot subject was evicted long ago: its bucket is gone,
	// and it is admitted again within its window.
	k, err := ratelimit.DefaultNamespace.TaggedKey("once:0", p.Name)
	require.NoError(t, err)
	_, err = s.Get(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound, "evicted")
	d, err := l.Allow(ctx, p, "once:0", 5)
	require.NoError(t, err)
	require.True(t, d.Allowed, "an evicted bucket admits again")
	// The last one is still there and still full.
	d, err = l.Allow(ctx, p, "once:"+strconv.Itoa(n-1), 1)
	require.NoError(t, err)
	require.False(t, d.Allowed, "a recent subject keeps its count")
}
