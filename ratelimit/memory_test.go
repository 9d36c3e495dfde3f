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
