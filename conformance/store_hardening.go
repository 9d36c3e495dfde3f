package conformance

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/store"
)

// testTTLOverflow: a ttl above store.MaxTTL, math.MaxInt64 ("forever")
// included, is clamped to MaxTTL by Set, SetNX, IncrBy and Expire: the key
// stays, and its TTL is at most MaxTTL.
func testTTLOverflow(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	forever := time.Duration(math.MaxInt64)
	set, nx, ctr, exp := e.key("set"), e.key("setnx"), e.key("incr"), e.key("expire")
	boundary, above, below := e.key("boundary"), e.key("above"), e.key("below")
	require.NoError(t, s.Set(ctx, set, []byte("v"), forever), "Set")
	ok, err := s.SetNX(ctx, nx, []byte("v"), forever)
	require.NoError(t, err, "SetNX")
	require.True(t, ok)
	n, err := s.IncrBy(ctx, ctr, 1, forever)
	require.NoError(t, err, "IncrBy")
	require.EqualValues(t, 1, n)
	require.NoError(t, s.Set(ctx, exp, []byte("v"), 0))
	ok, err = s.Expire(ctx, exp, forever)
	require.NoError(t, err, "Expire")
	require.True(t, ok, "Expire(MaxInt64) on an existing key")
	require.NoError(t, s.Set(ctx, boundary, []byte("v"), store.MaxTTL))
	require.NoError(t, s.Set(ctx, above, []byte("v"), store.MaxTTL+1))
	require.NoError(t, s.Set(ctx, below, []byte("v"), store.MaxTTL-time.Millisecond))

	e.passTime(time.Hour) // on a Clock: an hour later, the keys are still there
	_, hasClock := e.clock()
	for name, k := range map[string]string{"Set": set, "SetNX": nx, "IncrBy": ctr, "Expire": exp, "MaxTTL": boundary, "MaxTTL+1ns": above} {
		ttl, err := s.TTL(ctx, k)
		require.NoError(t, err, "%s with a ttl of MaxTTL or more: the key must exist", name)
		assert.True(t, ttl <= store.MaxTTL, "%s: TTL %v exceeds MaxTTL %v", name, ttl, store.MaxTTL)
		lowest := store.MaxTTL - time.Hour - 2*time.Millisecond // the hour passTime advanced a clock
		if !hasClock {
			lowest = store.MaxTTL - 5*time.Minute // real time, on a loaded machine
		}
		assert.True(t, ttl >= lowest, "%s: TTL %v, want about MaxTTL (%v)", name, ttl, store.MaxTTL)
	}
	ttl, err := s.TTL(ctx, below)
	require.NoError(t, err)
	assert.True(t, ttl < store.MaxTTL, "MaxTTL-1ms is kept as it is, not clamped: %v", ttl)
	v, err := s.Get(ctx, set)
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
	v, err = s.Get(ctx, ctr)
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)
}

// holdLua keeps the server busy for ARGV[1] milliseconds of the server's
// own TIME (Redis and miniredis run one script at a time, and nothing else
// meanwhile on that node).
const holdLua = `local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
repeat
  t = redis.call('TIME')
until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
return 1`

// testDeadlineWhileBusy: while a script holds the keys' slot (a Lua body
// looping on a server; a Go body blocking the memory driver's shard), calls
// on that slot with a short deadline return promptly, with an error that is
// ErrUnavailable and context.DeadlineExceeded, and Close does not hang.
func testDeadlineWhileBusy(e *env) {
	t := e.t
	const hold = 2 * time.Second
	const deadline = 50 * time.Millisecond
	const bound = hold / 2 // generous: the machine is shared; the bug waits the whole hold
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free()
	holdScript := store.NewScript("conformance-hold", holdLua, func(store.ScriptView, []string, []string) (store.Value, error) {
		select { // the Go body holds the shard until the case is done, at most hold
		case <-release:
		case <-time.After(hold):
		}
		return store.IntValue(1), nil
	})
	k, other := e.tagged("held"), e.tagged("other")
	holder := e.newStore() // a store of its own: a Redis driver's connection busy with the script
	held := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := holder.Eval(e.ctx, holdScript, []string{k}, strconv.Itoa(int(hold/time.Millisecond)))
		held <- err
	}()
	s := e.s
	noop := store.NewScript("conformance-noop", "return 1", func(store.ScriptView, []string, []string) (store.Value, error) {
		return store.IntValue(1), nil
	})
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, other); return err }},
		{"Set", func(ctx context.Context) error { return s.Set(ctx, other, []byte("v"), 0) }},
		{"Eval", func(ctx context.Context) error { _, err := s.Eval(ctx, noop, []string{other}); return err }},
	}
	busySeen := map[string]bool{}
	for len(busySeen) < len(calls) && time.Since(started) < hold/2 {
		for _, c := range calls {
			if busySeen[c.name] {
				continue
			}
			ctx, cancel := context.WithTimeout(e.ctx, deadline)
			begin := time.Now()
			done := make(chan error, 1)
			go func() { done <- c.call(ctx) }()
			select {
			case err := <-done:
				took := time.Since(begin)
				cancel()
				if err == nil || errors.Is(err, store.ErrNotFound) {
					continue // the holder has not started yet: try again
				}
				busySeen[c.name] = true
				t.Logf("%s on a busy slot returned after %v: %v", c.name, took.Round(time.Millisecond), err)
				assert.ErrorIs(t, err, context.DeadlineExceeded, "%s on a busy slot", c.name)
				assert.ErrorIs(t, err, store.ErrUnavailable, "%s on a busy slot", c.name)
				assert.Less(t, took, bound, "%s with a %v deadline waited for the busy slot", c.name, deadline)
			case <-time.After(bound):
				cancel()
				t.Fatalf("%s with a %v deadline did not return within %v while the slot was busy", c.name, deadline, bound)
			}
		}
	}
	require.Len(t, busySeen, len(calls), "every call found the slot busy within %v of the holder's start (seen: %v)", hold/2, busySeen)

	ctx, cancel := context.WithTimeout(e.ctx, deadline)
	begin := time.Now()
	err := s.Ping(ctx) // keyless: busy or not depends on the driver and topology
	cancel()
	assert.Less(t, time.Since(begin), bound, "Ping with a %v deadline: %v", deadline, err)

	closer := e.newStore()
	closed := make(chan error, 1)
	begin = time.Now()
	go func() { closed <- closer.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err, "Close")
		assert.Less(t, time.Since(begin), bound, "Close while the server is busy")
	case <-time.After(bound):
		t.Errorf("Close did not return within %v while a script held the server", bound)
	}
	free()
	select {
	case err := <-held:
		if err != nil { // not the contract under test; a driver may give up on a long script
			t.Logf("the holding script (%v of server time) ended with: %v", hold, err)
		}
	case <-time.After(hold + 30*time.Second):
		t.Errorf("the holding script did not end")
	}
}
