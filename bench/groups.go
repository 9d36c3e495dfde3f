package main

import (
	"context"
	"strconv"
	"time"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

func formatInt(i int64) string { return strconv.FormatInt(i, 10) }

// allGroups is every job measured, with karat's scenarios, its peers' and
// the floors.
func allGroups() []Group {
	var rl, hammer, mem []Scenario
	for _, l := range limiters() {
		if l.Redis {
			rl = append(rl, limiterScenario(l, false))
			hammer = append(hammer, limiterScenario(l, true))
		} else {
			mem = append(mem, limiterScenario(l, false))
		}
	}
	gs := []Group{
		{
			Name: "session", Title: "Session validation per request",
			Keyspaces: []Keyspace{Hot, Spread},
			Scenarios: append(karatSessionScenarios(), []Scenario{
				{Name: "scs-goredis", Kind: KindPeer, Setup: scsGoRedis},
				{Name: "scs-redigo", Kind: KindPeer, Setup: scsRedigo},
				{Name: "gorilla-redisstore", Kind: KindPeer, Setup: gorillaRedis},
				{Name: "raw-rueidis-docache", Kind: KindFloor, Setup: rawSessionGet(true)},
				{Name: "raw-rueidis-get", Kind: KindFloor, Setup: rawSessionGet(false)},
			}...),
		},
		{
			Name: "cache-hit", Title: "Cache read hit",
			Keyspaces: []Keyspace{Hot, Spread},
			Scenarios: append(karatCacheScenarios(false), []Scenario{
				{Name: "karat-store-getcached", Kind: KindKarat, Setup: karatStoreGetCached},
				{Name: "go-redis-cache-local", Kind: KindPeer, Setup: goRedisCache(true, false)},
				{Name: "go-redis-cache", Kind: KindPeer, Setup: goRedisCache(false, false)},
				{Name: "eko-gocache-goredis", Kind: KindPeer, Setup: ekoGocache(false)},
				{Name: "raw-rueidis-docache", Kind: KindFloor, Setup: rawCacheRueidis(true, false)},
				{Name: "raw-goredis-get", Kind: KindFloor, Setup: rawCacheGoRedis(false)},
			}...),
		},
		{
			Name: "cache-miss", Title: "Cache GetOrLoad miss (load, then store)",
			Keyspaces: []Keyspace{Unique},
			Scenarios: append(karatCacheScenarios(true), []Scenario{
				{Name: "go-redis-cache-local", Kind: KindPeer, Setup: goRedisCache(true, true)},
				{Name: "go-redis-cache", Kind: KindPeer, Setup: goRedisCache(false, true)},
				{Name: "eko-gocache-loadable", Kind: KindPeer, Setup: ekoGocache(true)},
				{Name: "raw-rueidis-get-set", Kind: KindFloor, Setup: rawCacheRueidis(false, true)},
				{Name: "raw-goredis-get-set", Kind: KindFloor, Setup: rawCacheGoRedis(true)},
			}...),
		},
		{Name: "ratelimit", Title: "Rate-limit decision (Redis), limit never reached", Keyspaces: []Keyspace{Hot, Spread}, Scenarios: rl},
		{Name: "ratelimit-hammer", Title: "Rate-limit decision (Redis), one client far over its limit", Keyspaces: []Keyspace{Hot}, Scenarios: hammer},
		{Name: "memlimit", Title: "Rate-limit decision in memory", Keyspaces: []Keyspace{Hot, Spread}, Scenarios: mem},
	}
	return append(gs, karatHTTPGroups()...)
}

// karatStoreGetCached is karat's store-level floor for cached reads:
// rueidisstore's GetCached (client-side cache hit, maxStale 1s) of the same
// JSON bytes, without the cache layer.
func karatStoreGetCached(env *Env) (*Instance, error) {
	s, err := drivers.Open(context.Background(), env.RedisURL)
	if err != nil {
		return nil, err
	}
	cr, ok := store.Capability[store.CachedReader](s)
	if !ok {
		s.Close()
		return nil, errNoCachedReads
	}
	keys := keyNames(env, "karat-store", env.Keys)
	ctx := context.Background()
	val := []byte(`{"id":1,"sku":"RING-100001","name":"Solitaire ring, 18k white gold, 0.5 ct","metal":"gold-750","weight_mg":3150,"price_cents":189900,"tags":["ring","diamond","bridal"]}`)
	if err := fill(env.Keys, func(i int) error { return s.Set(ctx, keys[i], val, cacheTTL) }); err != nil {
		s.Close()
		return nil, err
	}
	return &Instance{
		NewOp: func() Op {
			return func(ctx context.Context, k int) error {
				_, err := cr.GetCached(ctx, keys[k], time.Second)
				return err
			}
		},
		Close: func() { s.Close() },
	}, nil
}
