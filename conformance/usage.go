package conformance

import (
	"context"
	"strconv"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/store"
)

// testUsage: a UsageReporter counts the keys written (the database may
// hold others: at least as many as the case wrote, and more after it writes
// more) and, where it reports memory, a positive figure.
func testUsage(e *env) {
	e.skipUnless(store.CapUsage)
	t, ctx := e.t, e.ctx
	ur, _ := store.Capability[store.UsageReporter](e.s)
	const n = 50
	for i := range n {
		require.NoError(t, e.s.Set(ctx, e.key("usage-"+strconv.Itoa(i)), make([]byte, 1000), time.Hour))
	}
	before, err := ur.Usage(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, before.Keys, int64(n), "at least the keys this case wrote")
	assert.GreaterOrEqual(t, before.Bytes, int64(0))
	for i := range n {
		require.NoError(t, e.s.Set(ctx, e.key("usage-more-"+strconv.Itoa(i)), make([]byte, 1000), time.Hour))
	}
	after, err := ur.Usage(ctx)
	require.NoError(t, err)
	t.Logf("usage: %d keys, %d bytes, then %d keys, %d bytes", before.Keys, before.Bytes, after.Keys, after.Bytes)
	if isolated(e) {
		assert.Equal(t, int64(n), after.Keys-before.Keys, "the keys written in between are counted")
	} else {
		assert.GreaterOrEqual(t, after.Keys, int64(2*n), "the keys written in between are counted")
	}
	if before.Bytes > 0 {
		assert.Positive(t, after.Bytes, "memory in use")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = ur.Usage(cctx)
	assert.ErrorIs(t, err, context.Canceled, "a done context")
}

// isolated reports whether the case's store is its own (memory, miniredis:
// a fresh store per case), so that key counts are exact; a shared Redis
// also holds other cases' keys and the cleanup of earlier ones.
func isolated(e *env) bool {
	_, ok := e.h.(Clock)
	return ok
}
