package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ctxKey struct{}

// TestSharedDeadline: a call whose context can never end gets a deadline
// between 15/16 of the timeout and the timeout from its start, that ends
// with DeadlineExceeded, and keeps the caller's values; a caller's context
// that can end keeps its own Done and cancellation.
func TestSharedDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	l := &Limiter{timeout: timeout}
	for _, parent := range []context.Context{
		context.Background(),
		context.WithValue(context.Background(), ctxKey{}, "v"),
		context.WithoutCancel(context.WithValue(context.Background(), ctxKey{}, "v")),
	} {
		start := time.Now()
		ctx, cancel := l.withTimeout(parent)
		end := time.Now()
		d, ok := ctx.Deadline()
		require.True(t, ok, "a deadline")
		// withTimeout read the clock between start and end.
		assert.False(t, d.After(end.Add(timeout)), "never later than the timeout (deadline %v after end)", d.Sub(end))
		assert.False(t, d.Before(start.Add(timeout-timeout/sharedSlack)), "at least 15/16 of the timeout (deadline %v after start)", d.Sub(start))
		assert.Equal(t, parent.Value(ctxKey{}), ctx.Value(ctxKey{}), "the caller's values")
		require.NotNil(t, ctx.Done())
		select {
		case <-ctx.Done():
			assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
		case <-time.After(10 * time.Second):
			t.Fatal("the shared context did not end by its deadline")
		}
		assert.False(t, time.Now().Before(d), "ended at its deadline, not before")
		cancel()
	}
	// Calls that start close together share one context.
	a, _ := l.withTimeout(context.Background())
	b, _ := l.withTimeout(context.Background())
	assert.Equal(t, a, b, "one shared context")

	// A cancellable caller's context still ends the call.
	parent, stop := context.WithCancel(context.Background())
	ctx, cancel := l.withTimeout(parent)
	defer cancel()
	stop()
	select {
	case <-ctx.Done():
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the caller's cancellation did not end the call")
	}
}
