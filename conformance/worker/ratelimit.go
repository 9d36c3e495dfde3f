package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

func init() { register("ratelimit-allow", rateLimitAllow) }

// rateLimitAllow: args NAMESPACE KEY LIMIT WINDOW_MS GOROUTINES EACH. One
// Limiter (this process's) sends GOROUTINES×EACH requests of cost 1 on KEY
// under a GCRA policy of LIMIT per WINDOW_MS from GOROUTINES goroutines; the
// result is "allowed=N failed=M".
func rateLimitAllow(ctx context.Context, s store.Store, args []string) (string, error) {
	if len(args) != 6 {
		return "", fmt.Errorf("ratelimit-allow wants NAMESPACE KEY LIMIT WINDOW_MS GOROUTINES EACH, got %q", args)
	}
	ns, err := store.NewNamespace(args[0])
	if err != nil {
		return "", err
	}
	var n [4]int64
	for i, a := range args[2:] {
		if n[i], err = strconv.ParseInt(a, 10, 64); err != nil {
			return "", fmt.Errorf("ratelimit-allow: %q: %w", a, err)
		}
	}
	p := ratelimit.Policy{Name: "exact", Limit: n[0], Window: time.Duration(n[1]) * time.Millisecond}
	l := ratelimit.New(s, &ratelimit.Options{Namespace: ns, Timeout: 30 * time.Second})
	var allowed, failed atomic.Int64
	var wg sync.WaitGroup
	for range n[2] {
		wg.Go(func() {
			for range n[3] {
				d, err := l.Allow(ctx, p, args[1], 1)
				switch {
				case err != nil || d.Degraded != nil:
					failed.Add(1)
				case d.Allowed:
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("allowed=%d failed=%d", allowed.Load(), failed.Load()), nil
}
