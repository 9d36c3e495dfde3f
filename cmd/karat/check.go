package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

// checker runs `karat check`: one ✓ or ✗ line per check, with its time.
type checker struct {
	out    io.Writer
	failed int
}

// step runs fn as one check and prints its line; detail is what fn says
// about a success.
func (c *checker) step(name string, fn func() (detail string, err error)) bool {
	start := time.Now()
	detail, err := fn()
	el := time.Since(start)
	if err != nil {
		c.failed++
		fmt.Fprintf(c.out, "✗ %-34s %8.2f ms  %s\n", name, ms(el), oneLine(err))
		return false
	}
	fmt.Fprintf(c.out, "✓ %-34s %8.2f ms  %s\n", name, ms(el), detail)
	return true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// check verifies a live store with the three layers, under a random key
// prefix that it deletes at the end. It never touches another key: every
// layer writes under the prefix, and the cleanup scans only the prefix.
func check(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newEnvFlags("check")
	storeURL := f.fs.String("store", "", "store URL to verify (required)")
	f.twin("store", "KARAT_STORE_URL")
	timeout := f.fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := f.parse(args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "karat check: %s (karat check -h lists the flags)\n", oneLine(err))
		return 2
	}
	if *storeURL == "" {
		fmt.Fprintln(stderr, "karat check: --store URL is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &checker{out: stdout}

	var s store.Store
	if !c.step("connect", func() (string, error) {
		var err error
		s, err = drivers.Open(ctx, *storeURL)
		if err != nil {
			return "", err
		}
		return redactURL(*storeURL) + " (" + fmt.Sprint(store.Capabilities(s)) + ")", nil
	}) {
		return 1
	}
	defer s.Close()

	c.step("ping latency", func() (string, error) {
		var ds []time.Duration
		for range 10 {
			st := time.Now()
			if err := s.Ping(ctx); err != nil {
				return "", err
			}
			ds = append(ds, time.Since(st))
		}
		slices.Sort(ds)
		return fmt.Sprintf("10 pings: min %.2f ms, median %.2f ms, max %.2f ms", ms(ds[0]), ms(ds[5]), ms(ds[9])), nil
	})

	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	ns := store.MustNamespace("karat-check", hex.EncodeToString(rnd[:]))
	fmt.Fprintf(stdout, "  key prefix %s\n", ns.Prefix())

	checkSessions(ctx, c, s, ns)
	checkCache(ctx, c, s, ns)
	checkRateLimit(ctx, c, s, ns)

	c.step("cleanup", func() (string, error) {
		// A fresh context: a check that timed out still cleans up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		sc, ok := store.Capability[store.Scanner](s)
		if !ok {
			return "", errors.New("the store cannot scan keys: keys under the prefix may remain (they carry TTLs)")
		}
		var n int
		err := sc.Scan(cctx, ns.Prefix(), func(keys []string) error {
			for _, k := range keys {
				if _, err := s.Delete(cctx, k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		var left int
		if err := sc.Scan(cctx, ns.Prefix(), func(keys []string) error { left += len(keys); return nil }); err != nil {
			return "", err
		}
		if left > 0 {
			return "", fmt.Errorf("%d keys left under %s", left, ns.Prefix())
		}
		return fmt.Sprintf("deleted %d keys, none left under the prefix", n), nil
	})

	if c.failed > 0 {
		fmt.Fprintf(stdout, "%d checks failed\n", c.failed)
		return 1
	}
	fmt.Fprintln(stdout, "all checks passed")
	return 0
}

func sub(ns store.Namespace, part string) store.Namespace {
	n, err := ns.Sub(part)
	if err != nil {
		panic(err) // constant parts under a valid namespace
	}
	return n
}

func checkSessions(ctx context.Context, c *checker, s store.Store, ns store.Namespace) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	m, err := session.New(s, [][]byte{secret}, &session.Options{Namespace: sub(ns, "session"), Shards: 4})
	if !c.step("session: manager", func() (string, error) { return "4 shards", err }) {
		return
	}
	var tok1, tok2 string
	var s1 *session.Session
	if !c.step("session: create", func() (string, error) {
		var err error
		tok1, s1, err = m.Create(ctx, "check-user", "check-tenant", session.Meta{Device: "karat check", Data: map[string]string{"role": "owner"}})
		if err != nil {
			return "", err
		}
		tok2, _, err = m.Create(ctx, "check-user", "check-tenant", session.Meta{Device: "second device"})
		return "two sessions of one user, id " + s1.ID[:8] + "…", err
	}) {
		return
	}
	c.step("session: validate", func() (string, error) {
		v, err := m.Validate(ctx, tok1)
		if err != nil {
			return "", err
		}
		if v.ID != s1.ID || v.User != "check-user" {
			return "", fmt.Errorf("validated %s of %s, want %s of check-user", v.ID, v.User, s1.ID)
		}
		if _, err := m.Validate(ctx, "0000000000000000000000000000000000000000000000000000000000000000"); !errors.Is(err, session.ErrNotFound) {
			return "", fmt.Errorf("an unknown token: %v, want not found", err)
		}
		return "the token names its session; an unknown one is refused", nil
	})
	c.step("session: list", func() (string, error) {
		l, err := m.List(ctx, "check-user")
		if err != nil {
			return "", err
		}
		if len(l) != 2 {
			return "", fmt.Errorf("%d sessions listed, want 2", len(l))
		}
		return "2 sessions", nil
	})
	c.step("session: extend", func() (string, error) {
		v, err := m.Extend(ctx, tok1)
		if err != nil {
			return "", err
		}
		if v.Expires.Before(s1.Expires) {
			return "", fmt.Errorf("expiry moved back: %v < %v", v.Expires, s1.Expires)
		}
		return "expires " + v.Expires.UTC().Format(time.RFC3339), nil
	})
	c.step("session: revoke others", func() (string, error) {
		n, err := m.RevokeOthers(ctx, "check-user", tok1)
		if err != nil {
			return "", err
		}
		if n != 1 {
			return "", fmt.Errorf("revoked %d, want 1", n)
		}
		if _, err := m.Validate(ctx, tok2); !errors.Is(err, session.ErrNotFound) {
			return "", fmt.Errorf("the other session still validates: %v", err)
		}
		if _, err := m.Validate(ctx, tok1); err != nil {
			return "", fmt.Errorf("the kept session: %w", err)
		}
		return "1 revoked, the kept one still valid", nil
	})
}

func checkCache(ctx context.Context, c *checker, s store.Store, ns store.Namespace) {
	p := cache.Policy{Name: "check", TTL: time.Minute}
	kv, err := cache.New[string](s, p, &cache.Options[string]{Namespace: sub(ns, "cache"), MaxStale: -1})
	if !c.step("cache: new", func() (string, error) { return "policy check, TTL 1m", err }) {
		return
	}
	c.step("cache: set and get", func() (string, error) {
		if err := kv.Set(ctx, "tenant-a", "greeting", "سلام"); err != nil {
			return "", err
		}
		v, err := kv.Get(ctx, "tenant-a", "greeting")
		if err != nil {
			return "", err
		}
		if v != "سلام" {
			return "", fmt.Errorf("read %q back, want سلام", v)
		}
		return "UTF-8 value round-trips", nil
	})
	c.step("cache: cache-aside", func() (string, error) {
		loads := 0
		load := func(context.Context) (string, error) { loads++; return "loaded", nil }
		for range 3 {
			v, err := kv.GetOrLoad(ctx, "tenant-a", "aside", load)
			if err != nil {
				return "", err
			}
			if v != "loaded" {
				return "", fmt.Errorf("got %q", v)
			}
		}
		if loads != 1 {
			return "", fmt.Errorf("3 reads loaded %d times, want 1", loads)
		}
		return "3 reads, 1 load", nil
	})
	c.step("cache: tenant isolation", func() (string, error) {
		if _, err := kv.Get(ctx, "tenant-b", "greeting"); !errors.Is(err, cache.ErrNotFound) {
			return "", fmt.Errorf("tenant-b read tenant-a's key: %v", err)
		}
		return "tenant-b does not see tenant-a's entry", nil
	})
	c.step("cache: invalidation", func() (string, error) {
		if err := kv.InvalidateTenant(ctx, "tenant-a"); err != nil {
			return "", err
		}
		for _, k := range []string{"greeting", "aside"} {
			if _, err := kv.Get(ctx, "tenant-a", k); !errors.Is(err, cache.ErrNotFound) {
				return "", fmt.Errorf("%s after InvalidateTenant: %v, want not found", k, err)
			}
		}
		return "a tenant's entries gone in one call", nil
	})
	c.step("cache: stats", func() (string, error) {
		st := kv.Stats()
		if st.Loads != 1 || st.Hits+st.LocalHits < 3 || st.Errors != 0 {
			return "", fmt.Errorf("unexpected stats %+v", st)
		}
		return fmt.Sprintf("hits %d, misses %d, loads %d, hit rate %.0f%%", st.Hits+st.LocalHits, st.Misses, st.Loads, 100*st.HitRate()), nil
	})
}

func checkRateLimit(ctx context.Context, c *checker, s store.Store, ns store.Namespace) {
	l := ratelimit.New(s, &ratelimit.Options{Namespace: sub(ns, "ratelimit"), Timeout: 2 * time.Second})
	p := ratelimit.Policy{Name: "check", Limit: 5, Window: time.Minute}
	const key = "check-client"
	c.step("ratelimit: 5 allowed", func() (string, error) {
		for i := range 5 {
			d, err := l.Allow(ctx, p, key, 1)
			if err != nil {
				return "", err
			}
			if !d.Allowed || d.Degraded != nil {
				return "", fmt.Errorf("request %d denied (%+v)", i+1, d)
			}
		}
		return "5 of 5 per minute", nil
	})
	c.step("ratelimit: 6th denied", func() (string, error) {
		d, err := l.Allow(ctx, p, key, 1)
		if err != nil {
			return "", err
		}
		if d.Allowed || d.RetryAfter <= 0 {
			return "", fmt.Errorf("6th: %+v, want denied with a retry time", d)
		}
		return "retry after " + d.RetryAfter.Round(time.Millisecond).String(), nil
	})
	c.step("ratelimit: reset", func() (string, error) {
		if err := l.Reset(ctx, p, key); err != nil {
			return "", err
		}
		d, err := l.Peek(ctx, p, key, 1)
		if err != nil {
			return "", err
		}
		if !d.Allowed || d.Remaining != 5 {
			return "", fmt.Errorf("after reset: %+v, want 5 remaining", d)
		}
		return "5 remaining again", nil
	})
	c.step("ratelimit: status", func() (string, error) {
		if _, err := l.Allow(ctx, p, key, 2); err != nil {
			return "", err
		}
		d, err := l.Peek(ctx, p, key, 1)
		if err != nil {
			return "", err
		}
		if d.Remaining != 3 || d.Limit != 5 {
			return "", fmt.Errorf("after a cost of 2: %+v, want 3 of 5 remaining", d)
		}
		return fmt.Sprintf("%d of %d remaining, reset in %s", d.Remaining, d.Limit, d.ResetAfter.Round(time.Second)), nil
	})
}
