package rueidisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

// TestGetCachedString: the string variant answers like GetCached (missing
// key, hits, read-your-writes) and counts like it.
func TestGetCachedString(t *testing.T) {
	s := cachedStore(t, redistest.Single(t).Addr)
	ctx := context.Background()
	k := keyer(t)("k")
	const maxStale = time.Minute

	_, err := s.GetCachedString(ctx, k, maxStale)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.Set(ctx, k, []byte("v1"), 0))
	for range 3 {
		v, err := s.GetCachedString(ctx, k, maxStale)
		require.NoError(t, err)
		assert.Equal(t, "v1", v)
	}
	require.NoError(t, s.Set(ctx, k, []byte("v2"), 0))
	v, err := s.GetCachedString(ctx, k, maxStale)
	require.NoError(t, err)
	assert.Equal(t, "v2", v, "read-your-writes")
	b, err := s.GetCached(ctx, k, maxStale)
	require.NoError(t, err)
	b[0] = 'X' // the caller's copy
	v, err = s.GetCachedString(ctx, k, maxStale)
	require.NoError(t, err)
	assert.Equal(t, "v2", v, "changing GetCached's bytes does not change the cache")
	// A key another store wrote is served from the cache once filled.
	other := cachedStore(t, redistest.Single(t).Addr)
	k2 := keyer(t)("k2")
	require.NoError(t, other.Set(ctx, k2, []byte("w"), 0))
	for range 3 {
		v, err := s.GetCachedString(ctx, k2, maxStale)
		require.NoError(t, err)
		assert.Equal(t, "w", v)
	}
	st := s.Stats()
	assert.EqualValues(t, 10, st.CacheHits+st.CacheMisses, "every GetCached and GetCachedString call is a hit or a miss")
	assert.EqualValues(t, 12, st.Calls, "10 cached reads and 2 Sets")
	assert.NotZero(t, st.CacheHits, "the reads of k2 after the first hit the cache")
	_, err = s.GetCachedString(ctx, "", maxStale)
	require.ErrorIs(t, err, store.ErrInvalidKey)
}
