package goredisstore_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/goredisstore"
	"github.com/karat-go/karat/store"
)

// newStore returns a store over a fresh miniredis, its client and the server.
func newStore(t *testing.T) (store.Store, *redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return goredisstore.New(c, nil), c, m
}

func TestScriptReplies(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	for _, c := range []struct {
		lua  string
		want store.Value
	}{
		{`return {1, 'two', {3, {''}}, false, 'after-false'}`, store.ArrayValue(store.IntValue(1), store.StringValue("two"),
			store.ArrayValue(store.IntValue(3), store.ArrayValue(store.StringValue(""))), store.NilValue(), store.StringValue("after-false"))},
		{`return {}`, store.ArrayValue()},
		{`return nil`, store.NilValue()},
		{`return false`, store.NilValue()},
		{`return true`, store.IntValue(1)},
		{`return -7.9`, store.IntValue(-7)},
		{`return ''`, store.StringValue("")},
		{`return redis.status_reply('FINE')`, store.StringValue("FINE")},
		{`return redis.call('GET', KEYS[1])`, store.NilValue()},
	} {
		got, err := s.Eval(ctx, store.NewScript("t", c.lua, nil), []string{"k"})
		require.NoError(t, err, c.lua)
		assert.True(t, c.want.Equal(got), "%s: got %s, want %s", c.lua, got, c.want)
		if c.want.Kind == store.KindBytes {
			assert.NotNil(t, got.Bytes, "%s: bytes are never nil", c.lua)
		}
	}
}

func TestScriptErrors(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()

	_, err := s.Eval(ctx, store.NewScript("raise", `return redis.error_reply('CONFLICT have 3')`, nil), []string{"k"})
	var se *store.ScriptError
	require.ErrorAs(t, err, &se, "an error the body raises")
	assert.Equal(t, "CONFLICT have 3", se.Message)
	var re redis.Error
	assert.ErrorAs(t, err, &re, "the go-redis error stays reachable")

	require.NoError(t, s.HSet(ctx, "h", map[string][]byte{"f": []byte("v")}))
	_, err = s.Eval(ctx, store.NewScript("wrongtype", `return redis.call('GET', KEYS[1])`, nil), []string{"h"})
	assert.ErrorIs(t, err, store.ErrWrongType, "a store error met inside the body keeps its class")
	assert.False(t, errors.As(err, &se), "and is not a ScriptError: %v", err)

	require.NoError(t, s.Set(ctx, "str", []byte("x"), 0))
	_, err = s.IncrBy(ctx, "str", 1, time.Hour)
	assert.ErrorIs(t, err, store.ErrNotInteger, "the IncrBy script maps Redis's reply")
	assert.False(t, errors.As(err, &se), "a helper script's error is not the caller's ScriptError: %v", err)
}

// TestScriptNotCached checks the EVAL fallback: the first run of a script
// finds the server without it, and so does a run after SCRIPT FLUSH.
func TestScriptNotCached(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	sc := store.NewScript("inc", `return redis.call('INCR', KEYS[1])`, nil)
	for i := int64(1); i <= 3; i++ {
		v, err := s.Eval(ctx, sc, []string{"n"})
		require.NoError(t, err)
		assert.Equal(t, store.IntValue(i), v)
		require.NoError(t, c.ScriptFlush(ctx).Err())
	}
}

func TestTTLSentAsMilliseconds(t *testing.T) {
	s, _, m := newStore(t)
	ctx := context.Background()
	for ttl, want := range map[time.Duration]time.Duration{
		time.Microsecond:            time.Millisecond,
		1500 * time.Microsecond:     2 * time.Millisecond,
		2 * time.Second:             2 * time.Second,
		time.Hour + time.Nanosecond: time.Hour + time.Millisecond,
	} {
		require.NoError(t, s.Set(ctx, "set", []byte("v"), ttl))
		assert.Equal(t, want, m.TTL("set"), "Set(%v)", ttl)
		_, err := s.Delete(ctx, "nx")
		require.NoError(t, err)
		ok, err := s.SetNX(ctx, "nx", []byte("v"), ttl)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, want, m.TTL("nx"), "SetNX(%v)", ttl)
		ok, err = s.Expire(ctx, "nx", ttl)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, want, m.TTL("nx"), "Expire(%v)", ttl)
	}
	assert.ErrorIs(t, s.Set(ctx, "set", []byte("v"), redis.KeepTTL), store.ErrInvalidTTL, "-1 is a negative TTL, not KEEPTTL")
}

func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	s, c, _ := newStore(t)
	_, err := s.Get(ctx, "missing")
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorIs(t, err, redis.Nil, "joined with go-redis's error")
	_, err = s.HGet(ctx, "missing", "f")
	assert.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, c.Close(), "the user closes the client under the store")
	err = s.Set(ctx, "k", nil, 0)
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.ErrorIs(t, err, redis.ErrClosed)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	down := goredisstore.New(redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}), &goredisstore.Options{CloseClient: true})
	defer down.Close()
	err = down.Ping(ctx)
	assert.ErrorIs(t, err, store.ErrUnavailable, "connection refused")
	var op *net.OpError
	assert.ErrorAs(t, err, &op, "joined with the network error")
	assert.EqualValues(t, 1, down.(store.StatsReporter).Stats().Errors)
}

func TestAs(t *testing.T) {
	s, c, m := newStore(t)
	var u redis.UniversalClient
	require.True(t, s.As(&u))
	assert.Same(t, c, u)
	var single *redis.Client
	require.True(t, s.As(&single))
	assert.Same(t, c, single)
	var cluster *redis.ClusterClient
	assert.False(t, s.As(&cluster), "not a cluster client")
	assert.Nil(t, cluster)
	var other *int
	assert.False(t, s.As(&other))

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{m.Addr()}})
	defer cc.Close()
	cs := goredisstore.New(cc, nil)
	require.True(t, cs.As(&cluster))
	assert.Same(t, cc, cluster)
	single = nil
	assert.False(t, cs.As(&single))
	assert.Nil(t, single)
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)

	user := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer user.Close()
	s := goredisstore.New(user, nil)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.ErrorIs(t, s.Ping(ctx), store.ErrClosed)
	_, err := s.Get(ctx, "k")
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.ErrorIs(t, s.(store.Scanner).Scan(ctx, "", func([]string) error { return nil }), store.ErrClosed)
	assert.NoError(t, user.Ping(ctx).Err(), "a user's client stays open")

	owned := redis.NewClient(&redis.Options{Addr: m.Addr()})
	s = goredisstore.New(owned, &goredisstore.Options{CloseClient: true})
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.ErrorIs(t, owned.Ping(ctx).Err(), redis.ErrClosed, "CloseClient closes the client")
}

func TestScan(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	want := map[string]bool{}
	for _, k := range []string{"p*x:1", "p*x:2", `p*x:\`, "p*x:"} {
		require.NoError(t, s.Set(ctx, k, nil, 0))
		want[k] = true
	}
	for _, k := range []string{"pAx:1", "p\\*x:1", "p*", "other"} {
		require.NoError(t, s.Set(ctx, k, nil, 0))
	}
	got := map[string]bool{}
	require.NoError(t, s.(store.Scanner).Scan(ctx, "p*x:", func(keys []string) error {
		for _, k := range keys {
			got[k] = true
		}
		return nil
	}))
	assert.Equal(t, want, got, "the prefix is literal")

	stop := errors.New("stop")
	calls := 0
	err := s.(store.Scanner).Scan(ctx, "", func([]string) error { calls++; return stop })
	assert.Same(t, stop, err, "fn's error comes back as fn returned it")
	assert.Equal(t, 1, calls)
}

func TestStats(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	_, _ = s.Get(ctx, "missing") // not found: not an error
	_ = s.Set(ctx, "k", nil, -1) // invalid TTL: an error
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_ = s.Ping(canceled)        // the caller's context: not an error
	_, _ = s.HGet(ctx, "", "f") // invalid key: an error
	assert.Equal(t, store.Stats{Calls: 4, Errors: 2}, s.(store.StatsReporter).Stats())
}
