package faulttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/session"
)

// staleTolerance is how far past maxStale a stale answer may be measured,
// for the time between the revocation's reply and the moment the test reads
// the clock.
const staleTolerance = 50 * time.Millisecond

// TestCachedUnderFault: instance A validates a session and reads a cache
// entry through its client-side cache (rueidis; go-redis has none and reads
// the server each time), then is cut off from Redis by a silent partition
// (the proxy holds every byte, closes nothing). Instance B, still connected,
// revokes the session and replaces the entry. A must never answer the
// revoked session, or the replaced value, later than MaxStale after B's
// change: every success it returns is measured against that bound.
func TestCachedUnderFault(t *testing.T) {
	const maxStale = time.Second
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			proxy := redistest.NewProxy(t, srv.Addr)
			ns := testNamespace(t)
			sa := openStore(t, withDriver("redis://"+proxy.Addr, drv))
			defer sa.Close()
			sb := openStore(t, withDriver(srv.URL, "goredis"))
			defer sb.Close()
			opts := &session.Options{MaxStale: maxStale}
			a := newStackIn(t, sa, ns, opts)
			b := newStackIn(t, sb, ns, opts)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, _, err := b.sess.Create(ctx, "victim", "shop", session.Meta{Device: "stolen laptop"})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.cache.Set(ctx, "shop", "price", "old"); err != nil {
				t.Fatal(err)
			}
			// A reads both, twice, so that they sit in its client-side cache.
			for range 2 {
				if _, err := a.sess.Validate(ctx, tok); err != nil {
					t.Fatal(err)
				}
				if v, err := a.cache.Get(ctx, "shop", "price"); err != nil || v != "old" {
					t.Fatalf("cache get: %q %v", v, err)
				}
			}

			proxy.Stall()
			if err := b.sess.Revoke(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if err := b.cache.Set(ctx, "shop", "price", "new"); err != nil {
				t.Fatal(err)
			}
			changed := time.Now()

			var lastValid, lastOld time.Time
			validDuring, oldDuring := 0, 0
			for time.Since(changed) < maxStale+1500*time.Millisecond {
				c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_, err := a.sess.Validate(c, tok)
				now := time.Now()
				if err == nil {
					lastValid, validDuring = now, validDuring+1
				} else if !typed(err) {
					t.Errorf("validate under partition: untyped error %v", err)
				}
				v, err := a.cache.Get(c, "shop", "price")
				now = time.Now()
				if err == nil && v == "old" {
					lastOld, oldDuring = now, oldDuring+1
				} else if err != nil && !typed(err) {
					t.Errorf("cache get under partition: untyped error %v", err)
				}
				cancel()
				time.Sleep(5 * time.Millisecond) // sampling rate, not synchronisation
			}
			if !lastValid.IsZero() {
				if late := lastValid.Sub(changed); late > maxStale+staleTolerance {
					t.Errorf("the revoked session was valid on the cut-off instance %v after the revocation (maxStale %v)", late, maxStale)
				} else {
					figure(t, "revoked session last valid on the partitioned instance %v after the revocation (%d stale answers; bound %v)", late.Round(time.Millisecond), validDuring, maxStale)
				}
			} else {
				figure(t, "revoked session never valid on the partitioned instance after the revocation")
			}
			if !lastOld.IsZero() {
				if late := lastOld.Sub(changed); late > maxStale+staleTolerance {
					t.Errorf("the replaced cache value was served on the cut-off instance %v after the change (maxStale %v)", late, maxStale)
				} else {
					figure(t, "replaced cache value last served on the partitioned instance %v after the change (%d stale answers; bound %v)", late.Round(time.Millisecond), oldDuring, maxStale)
				}
			} else {
				figure(t, "replaced cache value never served on the partitioned instance after the change")
			}

			// Healed, A sees the truth.
			proxy.Resume()
			deadline := time.Now().Add(recoveryBound)
			for {
				_, err := a.sess.Validate(ctx, tok)
				v, gerr := a.cache.Get(ctx, "shop", "price")
				if errors.Is(err, session.ErrNotFound) && gerr == nil && v == "new" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the partition healed: validate %v, cache %q %v", err, v, gerr)
				}
				time.Sleep(10 * time.Millisecond) // polling up to a deadline
			}
		})
	}
}

// TestCachedAcrossRestart: A has a session and an entry in its client-side
// cache; the server is killed and comes back empty (no persistence). Nothing
// A cached may be served later than MaxStale after the kill, and once the
// server is back the session is gone (never resurrected from a cache).
func TestCachedAcrossRestart(t *testing.T) {
	const maxStale = time.Second
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			s := openStore(t, withDriver(srv.URL, drv))
			defer s.Close()
			a := newStack(t, s, &session.Options{MaxStale: maxStale})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, _, err := a.sess.Create(ctx, "u", "shop", session.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := a.sess.Validate(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
			srv.Kill()
			killed := time.Now()
			var last time.Time
			restarted := false
			for time.Since(killed) < maxStale+1500*time.Millisecond {
				if !restarted && time.Since(killed) > 300*time.Millisecond {
					srv.Start()
					restarted = true
				}
				c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_, err := a.sess.Validate(c, tok)
				cancel()
				if err == nil {
					last = time.Now()
				} else if !typed(err) {
					t.Errorf("untyped error %v", err)
				}
				time.Sleep(5 * time.Millisecond) // sampling rate, not synchronisation
			}
			if !last.IsZero() && last.Sub(killed) > maxStale+staleTolerance {
				t.Errorf("a session the server lost was valid %v after the kill (maxStale %v)", last.Sub(killed), maxStale)
			}
			if _, err := a.sess.Validate(ctx, tok); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("after the restart without persistence the session validates: %v, want ErrNotFound", err)
			}
		})
	}
}
