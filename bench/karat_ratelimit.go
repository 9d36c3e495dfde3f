package main

import (
	"context"
	"fmt"
	"time"

	"github.com/karat-go/karat/ratelimit"
)

// karatLimiters are karat's rate limiters: GCRA and sliding window on
// rueidis and go-redis, and GCRA on the memory driver. Each uses the
// layer's defaults (FailClosed, a 250 ms store timeout, the "blocked until"
// memory of 100,000 keys).
func karatLimiters() []Limiter {
	return []Limiter{
		{Name: "karat-gcra-rueidis", Kind: KindKarat, Redis: true, Open: openKaratLimiter("", ratelimit.GCRA)},
		{Name: "karat-sliding-rueidis", Kind: KindKarat, Redis: true, Open: openKaratLimiter("", ratelimit.SlidingWindow)},
		{Name: "karat-gcra-goredis", Kind: KindKarat, Redis: true, Open: openKaratLimiter("driver=goredis", ratelimit.GCRA)},
		{Name: "karat-sliding-goredis", Kind: KindKarat, Redis: true, Open: openKaratLimiter("driver=goredis", ratelimit.SlidingWindow)},
		{Name: "karat-memory", Kind: KindKarat, Open: openKaratLimiter("memory", ratelimit.GCRA)},
	}
}

// openKaratLimiter opens a ratelimit.Limiter over a karat store. A decision
// that the policy's fail mode took because the store failed (Degraded) is
// an error here: the bench counts failures, not the fail mode's guess.
func openKaratLimiter(query string, alg ratelimit.Algorithm) func(env *Env, limit int, period time.Duration) (Decider, func(), error) {
	return func(env *Env, limit int, period time.Duration) (Decider, func(), error) {
		s, err := openKarat(env, query)
		if err != nil {
			return nil, nil, err
		}
		opts := &ratelimit.Options{}
		if env.Prefix != "" {
			if opts.Namespace, err = karatNS(env, "karat-rl-"+alg.String()); err != nil {
				s.Close()
				return nil, nil, err
			}
		}
		l := ratelimit.New(s, opts)
		p := ratelimit.Policy{Name: "bench", Limit: int64(limit), Window: period, Algorithm: alg}
		if err := p.Validate(); err != nil {
			s.Close()
			return nil, nil, err
		}
		return func(ctx context.Context, key string) (bool, error) {
			d, err := l.Allow(ctx, p, key, 1)
			if err != nil {
				return false, err
			}
			if d.Degraded != nil {
				return false, fmt.Errorf("degraded decision: %w", d.Degraded)
			}
			return d.Allowed, nil
		}, func() { s.Close() }, nil
	}
}
