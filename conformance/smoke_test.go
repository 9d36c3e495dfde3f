package conformance_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

// TestConformanceSentinel and TestConformanceTLS open each Redis driver over
// Sentinel and over TLS by URL and run a few operations: the full suite runs
// on the single-node and cluster targets; these prove the connection paths.
// Their names start with TestConformance, so go test -run Conformance runs
// them too, but not with TestConformance/ (the matrix of targets).
func TestConformanceSentinel(t *testing.T) {
	sn := redistest.SentinelServers(t)
	for _, driver := range []string{"rueidis", "goredis"} {
		t.Run(driver, func(t *testing.T) { smoke(t, sn.URL+"?driver="+driver) })
	}
}

func TestConformanceTLS(t *testing.T) {
	srv := redistest.TLSServers(t)
	for _, driver := range []string{"rueidis", "goredis"} {
		t.Run(driver, func(t *testing.T) { smoke(t, srv.URL+"&driver="+driver) })
	}
}

func smoke(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := drivers.Open(ctx, url)
	require.NoError(t, err)
	defer s.Close()
	k, err := store.TaggedKey("karat-smoke-"+t.Name(), "k")
	require.NoError(t, err)
	c, err := store.TaggedKey("karat-smoke-"+t.Name(), "c")
	require.NoError(t, err)
	defer s.Delete(context.Background(), k, c)
	require.NoError(t, s.Set(ctx, k, []byte("v"), time.Minute))
	v, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
	n, err := s.IncrBy(ctx, c, 2, time.Minute)
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)
	vs, err := s.MGet(ctx, k, c)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("v"), []byte("2")}, vs)
	if cr, ok := store.Capability[store.CachedReader](s); ok {
		v, err := cr.GetCached(ctx, k, time.Second)
		require.NoError(t, err)
		assert.Equal(t, []byte("v"), v)
	}
}
