package main

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/rueidis"
	"github.com/sethvargo/go-limiter/memorystore"
	"github.com/throttled/throttled/v2"
	throttledredis "github.com/throttled/throttled/v2/store/goredisstore.v9"
	"github.com/ulule/limiter/v3"
	ululememory "github.com/ulule/limiter/v3/drivers/store/memory"
	ululeredis "github.com/ulule/limiter/v3/drivers/store/redis"
	"golang.org/x/time/rate"
)

// Decider is one rate-limit decision for key: allowed or denied. err is a
// failure (the library could not decide), never a denial.
type Decider func(ctx context.Context, key string) (allowed bool, err error)

// Limiter is a rate limiter under test: limit decisions per period per key.
type Limiter struct {
	Name  string
	Kind  Kind
	Redis bool // shared state in Redis (so it can be tested across processes)
	Open  func(env *Env, limit int, period time.Duration) (Decider, func(), error)
}

// limiters lists every rate limiter, peers and floors; karat's are added by
// karatLimiters.
func limiters() []Limiter {
	return append([]Limiter{
		{Name: "redis_rate", Kind: KindPeer, Redis: true, Open: openRedisRate},
		{Name: "ulule-redis", Kind: KindPeer, Redis: true, Open: openUluleRedis},
		{Name: "throttled-goredis", Kind: KindPeer, Redis: true, Open: openThrottled},
		{Name: "raw-evalsha", Kind: KindFloor, Redis: true, Open: openRawEvalsha},
		{Name: "ulule-memory", Kind: KindPeer, Open: openUluleMemory},
		{Name: "sethvargo-memory", Kind: KindPeer, Open: openSethvargo},
		{Name: "x-time-rate-map", Kind: KindPeer, Open: openXTimeRate},
	}, karatLimiters()...)
}

// openRedisRate is go-redis/redis_rate (GCRA in Lua, go-redis client), with
// a burst equal to the limit so that limit requests pass at once.
func openRedisRate(env *Env, limit int, period time.Duration) (Decider, func(), error) {
	c := newGoRedis(env)
	l := redis_rate.NewLimiter(c)
	lim := redis_rate.Limit{Rate: limit, Burst: limit, Period: period}
	prefix := env.Prefix + ":redis_rate:"
	return func(ctx context.Context, key string) (bool, error) {
		res, err := l.Allow(ctx, prefix+key, lim)
		if err != nil {
			return false, err
		}
		return res.Allowed > 0, nil
	}, func() { c.Close() }, nil
}

// openUluleRedis is ulule/limiter with its Redis store (fixed window in Lua,
// go-redis client).
func openUluleRedis(env *Env, limit int, period time.Duration) (Decider, func(), error) {
	c := newGoRedis(env)
	st, err := ululeredis.NewStoreWithOptions(c, limiter.StoreOptions{Prefix: env.Prefix + ":ulule"})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	l := limiter.New(st, limiter.Rate{Period: period, Limit: int64(limit)})
	return func(ctx context.Context, key string) (bool, error) {
		res, err := l.Get(ctx, key)
		if err != nil {
			return false, err
		}
		return !res.Reached, nil
	}, func() { c.Close() }, nil
}

// openThrottled is throttled's GCRA over its go-redis v9 store (optimistic
// compare-and-swap from the client, up to 10 attempts).
func openThrottled(env *Env, limit int, period time.Duration) (Decider, func(), error) {
	c := newGoRedis(env)
	st, err := throttledredis.NewCtx(c, env.Prefix+":throttled:")
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	rl, err := throttled.NewGCRARateLimiterCtx(st, throttled.RateQuota{MaxRate: perPeriod(limit, period), MaxBurst: limit - 1})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return func(ctx context.Context, key string) (bool, error) {
		limited, _, err := rl.RateLimitCtx(ctx, key, 1)
		if err != nil {
			return false, err
		}
		return !limited, nil
	}, func() { c.Close() }, nil
}

func perPeriod(limit int, period time.Duration) throttled.Rate {
	switch period {
	case time.Second:
		return throttled.PerSec(limit)
	case time.Minute:
		return throttled.PerMin(limit)
	default:
		return throttled.PerDuration(limit, period)
	}
}

// rawIncrScript is the floor: the least a Redis rate limiter can do, a
// fixed-window counter in one EVALSHA.
const rawIncrScript = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

// openRawEvalsha is rueidis running rawIncrScript (EVALSHA, EVAL on
// NOSCRIPT), with no decoding beyond the integer.
func openRawEvalsha(env *Env, limit int, period time.Duration) (Decider, func(), error) {
	c, err := newRueidis(env, true)
	if err != nil {
		return nil, nil, err
	}
	script := rueidis.NewLuaScript(rawIncrScript)
	ms := []string{formatInt(period.Milliseconds())}
	prefix := env.Prefix + ":raw-rl:"
	return func(ctx context.Context, key string) (bool, error) {
		n, err := script.Exec(ctx, c, []string{prefix + key}, ms).AsInt64()
		if err != nil {
			return false, err
		}
		return n <= int64(limit), nil
	}, c.Close, nil
}

// openUluleMemory is ulule/limiter's memory store.
func openUluleMemory(_ *Env, limit int, period time.Duration) (Decider, func(), error) {
	l := limiter.New(ululememory.NewStore(), limiter.Rate{Period: period, Limit: int64(limit)})
	return func(ctx context.Context, key string) (bool, error) {
		res, err := l.Get(ctx, key)
		if err != nil {
			return false, err
		}
		return !res.Reached, nil
	}, func() {}, nil
}

// openSethvargo is sethvargo/go-limiter's memory store (token bucket).
func openSethvargo(_ *Env, limit int, period time.Duration) (Decider, func(), error) {
	st, err := memorystore.New(&memorystore.Config{Tokens: uint64(limit), Interval: period})
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, key string) (bool, error) {
		_, _, _, ok, err := st.Take(ctx, key)
		return ok, err
	}, func() { _ = st.Close(context.Background()) }, nil
}

// openXTimeRate is golang.org/x/time/rate, one limiter per key in a map
// behind a mutex, as applications commonly write it.
func openXTimeRate(_ *Env, limit int, period time.Duration) (Decider, func(), error) {
	var mu sync.Mutex
	m := map[string]*rate.Limiter{}
	every := rate.Every(period / time.Duration(limit))
	return func(_ context.Context, key string) (bool, error) {
		mu.Lock()
		l, ok := m[key]
		if !ok {
			l = rate.NewLimiter(every, limit)
			m[key] = l
		}
		mu.Unlock()
		return l.Allow(), nil
	}, func() {}, nil
}

// The limits of the speed scenarios: one that is never reached, and one that
// a hammering client is far over.
const (
	openLimit   = 3_600_000 // one a millisecond: a whole-millisecond policy, like every preset; never reached in a run
	openPeriod  = time.Hour
	hammerLimit = 10
)

// limiterScenario measures decisions under a limit that is never reached
// (hammer false), or on a key already over a small limit (hammer true: every
// decision is a denial).
func limiterScenario(l Limiter, hammer bool) Scenario {
	return Scenario{Name: l.Name, Kind: l.Kind, Setup: func(env *Env) (*Instance, error) {
		limit := openLimit
		if hammer {
			limit = hammerLimit
		}
		decide, closeFn, err := l.Open(env, limit, openPeriod)
		if err != nil {
			return nil, err
		}
		keys := keyNames(env, "rl", env.Keys)
		if hammer {
			ctx := context.Background()
			for range 2 * hammerLimit {
				if _, err := decide(ctx, keys[0]); err != nil {
					closeFn()
					return nil, err
				}
			}
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					_, err := decide(ctx, keys[k])
					return err
				}
			},
			Close: closeFn,
		}, nil
	}}
}
