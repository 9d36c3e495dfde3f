package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

// scriptOnly hides the memory driver's store.Int64Updater (it embeds the
// store.Store interface, not *memstore.Store), so a limiter over it decides
// with the GCRA script, as on Redis.
type scriptOnly struct{ store.Store }

// keyState is what a decision left in the store for one key.
type keyState struct {
	val string
	ttl time.Duration
	err string
}

func readKey(t *testing.T, s store.Store, key string) keyState {
	t.Helper()
	ctx := context.Background()
	v, err := s.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return keyState{err: "not found"}
	}
	require.NoError(t, err)
	ttl, err := s.TTL(ctx, key)
	require.NoError(t, err)
	return keyState{val: string(v), ttl: ttl}
}

// TestInProcessAgreesWithScript: the same sequence of requests, on one fake
// clock, through a limiter that decides in process (UpdateInt64 on the
// memory driver) and one that runs the GCRA scripts (the same driver with
// the capability hidden) gives the same decision every time and leaves the
// same value and TTL in the store: admissions, denials without charge,
// costs above the burst, peeks, resets, refills as time passes, a bucket
// that empties and expires, and keys holding garbage.
func TestInProcessAgreesWithScript(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2040, 1, 2, 3, 4, 5, 123456000, time.UTC)
	// Intervals of microseconds: the script path runs the TIME script. With
	// whole milliseconds it runs the PTTL script, whose state is the key's
	// expiry (its value is empty, not the digits the in-process path
	// keeps): those are compared on a clock that moves by whole
	// milliseconds, by decision and TTL, without garbage keys (the PTTL
	// script counts a foreign value's TTL as used time).
	usPolicies := []ratelimit.Policy{
		{Name: "p3", Limit: 3, Window: time.Second},
		{Name: "burst", Limit: 7, Window: time.Minute, Burst: 4},
		{Name: "slow", Limit: 7, Window: 13 * time.Second},
		{Name: "ms", Limit: 3, Window: time.Millisecond},
	}
	msPolicies := []ratelimit.Policy{
		{Name: "p2", Limit: 2, Window: time.Second},
		{Name: "burst", Limit: 10, Window: time.Minute, Burst: 4},
		{Name: "slow", Limit: 7, Window: 14 * time.Second},
		{Name: "ms", Limit: 1, Window: time.Millisecond},
	}
	subjects := []string{"a", "user:42", "{b}", "\xff"}
	for _, run := range []struct {
		blocked int
		whole   bool
	}{{-1, false}, {0, false}, {-1, true}, {0, true}} {
		blocked, whole, policies := run.blocked, run.whole, usPolicies
		if whole {
			policies = msPolicies
		}
		t.Run(fmt.Sprintf("blocked-keys=%d/whole-ms=%v", blocked, whole), func(t *testing.T) {
			clock := memstore.NewFakeClock(start)
			appNow := func() time.Time { return clock.Now() }
			fast, slow := memstore.New(&memstore.Options{Clock: clock}), memstore.New(&memstore.Options{Clock: clock})
			defer fast.Close()
			defer slow.Close()
			_, ok := store.Capability[store.Int64Updater](scriptOnly{slow})
			require.False(t, ok, "the script-only store hides the capability")
			opts := &ratelimit.Options{Clock: appNow, BlockedKeys: blocked}
			lf, ls := ratelimit.New(fast, opts), ratelimit.New(scriptOnly{slow}, opts)
			keyOf := func(p ratelimit.Policy, subject string) string {
				k, err := ratelimit.DefaultNamespace.TaggedKey(subject, p.Name)
				require.NoError(t, err)
				return k
			}
			// Garbage where a TAT should be: both read it as no TAT.
			subjects := subjects
			if !whole {
				for _, g := range []string{"not-a-number", "-5", "007"} {
					k := keyOf(policies[0], "garbage"+g)
					require.NoError(t, fast.Set(ctx, k, []byte(g), time.Hour))
					require.NoError(t, slow.Set(ctx, k, []byte(g), time.Hour))
				}
				subjects = append(subjects, "garbagenot-a-number", "garbage-5", "garbage007")
			}
			r := rand.New(rand.NewPCG(7, 11))
			var allowed, denied, never, local int
			for step := range 4000 {
				p := policies[r.IntN(len(policies))]
				subject := subjects[r.IntN(len(subjects))]
				cost := int64(1)
				switch r.IntN(10) {
				case 0:
					cost = 1 + r.Int64N(12) // often above the burst
				case 1:
					cost = 2
				}
				var df, ds ratelimit.Decision
				var ef, es error
				op := r.IntN(20)
				switch {
				case op < 13:
					df, ef = lf.Allow(ctx, p, subject, cost)
					ds, es = ls.Allow(ctx, p, subject, cost)
				case op < 18:
					df, ef = lf.Peek(ctx, p, subject, cost)
					ds, es = ls.Peek(ctx, p, subject, cost)
				default:
					ef = lf.Reset(ctx, p, subject)
					es = ls.Reset(ctx, p, subject)
				}
				where := fmt.Sprintf("step %d: op %d, policy %s, subject %q, cost %d", step, op, p.Name, subject, cost)
				require.Equal(t, es, ef, where)
				require.Equal(t, ds, df, where)
				k := keyOf(p, subject)
				ks, kf := readKey(t, slow, k), readKey(t, fast, k)
				if whole {
					ks.val, kf.val = "", ""
				}
				require.Equal(t, ks, kf, where)
				switch {
				case op >= 18:
				case df.Never:
					never++
				case df.Local:
					local++
				case df.Allowed:
					allowed++
				default:
					denied++
				}
				// Time moves by less than a microsecond up to a few seconds.
				var d time.Duration
				switch n := r.IntN(10); {
				case n < 4:
				case n < 6:
					d = time.Duration(r.IntN(2000)) * time.Nanosecond
				case n < 9:
					d = time.Duration(r.IntN(50_000)) * time.Microsecond
				default:
					d = time.Duration(r.IntN(2000)) * time.Millisecond
				}
				if whole {
					d = d.Round(time.Millisecond)
				}
				clock.Advance(d)
			}
			require.Equal(t, ls.Stats(), lf.Stats(), "the same counters")
			t.Logf("allowed %d, denied by the store %d, never %d, denied by the blocked memory %d", allowed, denied, never, local)
			require.Greater(t, allowed, 500)
			require.Greater(t, denied, 100)
			require.Greater(t, never, 50)
			if blocked == 0 {
				require.Greater(t, local, 20)
			}
		})
	}
}

// TestInProcessErrors: bad input is an error on the in-process path too,
// and a key holding a hash is a store error the fail mode decides, as on
// the script path.
func TestInProcessErrors(t *testing.T) {
	ctx := context.Background()
	fast, slow := memstore.New(nil), memstore.New(nil)
	defer fast.Close()
	defer slow.Close()
	lf, ls := ratelimit.New(fast, nil), ratelimit.New(scriptOnly{slow}, nil)
	p := ratelimit.Policy{Name: "p", Limit: 3, Window: time.Second}
	for _, l := range []*ratelimit.Limiter{lf, ls} {
		_, err := l.Allow(ctx, p, "", 1)
		require.ErrorIs(t, err, ratelimit.ErrInvalidKey)
		_, err = l.Allow(ctx, p, "k", 0)
		require.ErrorIs(t, err, ratelimit.ErrInvalidCost)
		_, err = l.Peek(ctx, ratelimit.Policy{Name: "bad"}, "k", 1)
		require.ErrorIs(t, err, ratelimit.ErrInvalidPolicy)
		_, err = l.Allow(ctx, p, string(make([]byte, store.MaxPartLen+1)), 1)
		require.ErrorIs(t, err, store.ErrInvalidKey)
	}
	k, err := ratelimit.DefaultNamespace.TaggedKey("h", p.Name)
	require.NoError(t, err)
	for _, s := range []store.Store{fast, slow} {
		require.NoError(t, s.HSet(ctx, k, map[string][]byte{"f": []byte("v")}))
	}
	df, err := lf.Allow(ctx, p, "h", 1)
	require.NoError(t, err)
	ds, err := ls.Allow(ctx, p, "h", 1)
	require.NoError(t, err)
	require.ErrorIs(t, df.Degraded, store.ErrWrongType)
	require.ErrorIs(t, ds.Degraded, store.ErrWrongType)
	df.Degraded, ds.Degraded = nil, nil
	require.Equal(t, ds, df, "FailClosed on both")
}
