package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	gocache "github.com/eko/gocache/lib/v4/cache"
	"github.com/eko/gocache/lib/v4/marshaler"
	libstore "github.com/eko/gocache/lib/v4/store"
	ekoredis "github.com/eko/gocache/store/redis/v4"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// Product is the value every cache scenario stores: a jeweller's product, as
// the cache layer's users keep them (about 200 bytes of JSON).
type Product struct {
	ID         int64    `json:"id" msgpack:"id"`
	SKU        string   `json:"sku" msgpack:"sku"`
	Name       string   `json:"name" msgpack:"name"`
	Metal      string   `json:"metal" msgpack:"metal"`
	WeightMg   int64    `json:"weight_mg" msgpack:"weight_mg"`
	PriceCents int64    `json:"price_cents" msgpack:"price_cents"`
	Tags       []string `json:"tags" msgpack:"tags"`
}

func product(i int) Product {
	return Product{
		ID: int64(i), SKU: "RING-" + strconv.Itoa(100000+i), Name: "Solitaire ring, 18k white gold, 0.5 ct",
		Metal: "gold-750", WeightMg: 3150, PriceCents: 189900, Tags: []string{"ring", "diamond", "bridal"},
	}
}

const cacheTTL = time.Hour

var errBadValue = errors.New("cache returned a wrong value")

// goRedisCache is go-redis/cache (msgpack, s2 compression above 64 bytes),
// with or without its local TinyLFU (sized to hold every key, the most
// favourable setting for it; it is not invalidated by other processes'
// writes).
func goRedisCache(local bool, miss bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		c := newGoRedis(env)
		opts := &rediscache.Options{Redis: c}
		if local {
			opts.LocalCache = rediscache.NewTinyLFU(max(env.Keys, 1000), time.Minute)
		}
		cd := rediscache.New(opts)
		name := "gocache-redis"
		if local {
			name = "gocache-local"
		}
		keys := keyNames(env, name, env.Keys)
		ctx := context.Background()
		if !miss {
			if err := fill(env.Keys, func(i int) error {
				return cd.Set(&rediscache.Item{Ctx: ctx, Key: keys[i], Value: product(i), TTL: cacheTTL})
			}); err != nil {
				c.Close()
				return nil, err
			}
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					var p Product
					if miss {
						err := cd.Once(&rediscache.Item{
							Ctx: ctx, Key: env.Prefix + ":" + name + "-miss:" + strconv.Itoa(k), Value: &p, TTL: time.Minute,
							Do: func(*rediscache.Item) (any, error) { return product(k), nil },
						})
						if err == nil && p.ID != int64(k) {
							return errBadValue
						}
						return err
					}
					if err := cd.Get(ctx, keys[k], &p); err != nil {
						return err
					}
					if p.ID != int64(k) {
						return errBadValue
					}
					return nil
				}
			},
			Close: func() { c.Close() },
		}, nil
	}
}

// ekoGocache is eko/gocache with its go-redis store, through its marshaler
// (msgpack) for hits and its loadable cache for misses.
func ekoGocache(miss bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		c := newGoRedis(env)
		st := ekoredis.NewRedis(c, libstore.WithExpiration(cacheTTL))
		keys := keyNames(env, "eko", env.Keys)
		ctx := context.Background()
		if miss {
			cm := gocache.New[any](st)
			lc := gocache.NewLoadable[any](func(_ context.Context, key any) (any, []libstore.Option, error) {
				s := key.(string)
				i, _ := strconv.Atoi(s[len(env.Prefix)+len(":eko-miss:"):])
				b, err := json.Marshal(product(i))
				return string(b), nil, err
			}, cm)
			return &Instance{
				NewOp: func() Op {
					return func(ctx context.Context, k int) error {
						v, err := lc.Get(ctx, env.Prefix+":eko-miss:"+strconv.Itoa(k))
						if err != nil {
							return err
						}
						var p Product
						if err := json.Unmarshal([]byte(v.(string)), &p); err != nil {
							return err
						}
						if p.ID != int64(k) {
							return errBadValue
						}
						return nil
					}
				},
				Close: func() { lc.Close(); c.Close() },
			}, nil
		}
		m := marshaler.New(gocache.New[any](st))
		if err := fill(env.Keys, func(i int) error {
			return m.Set(ctx, keys[i], product(i))
		}); err != nil {
			c.Close()
			return nil, err
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					var p Product
					if _, err := m.Get(ctx, keys[k], &p); err != nil {
						return err
					}
					if p.ID != int64(k) {
						return errBadValue
					}
					return nil
				}
			},
			Close: func() { c.Close() },
		}, nil
	}
}

// rawCacheRueidis is the floor: GET (DoCache when cached) of the JSON bytes,
// no decoding; for a miss, GET then SET with a TTL.
func rawCacheRueidis(cached, miss bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		c, err := newRueidis(env, !cached)
		if err != nil {
			return nil, err
		}
		keys := keyNames(env, "raw-cache", env.Keys)
		ctx := context.Background()
		if !miss {
			if err := fill(env.Keys, func(i int) error {
				b, _ := json.Marshal(product(i))
				return c.Do(ctx, c.B().Set().Key(keys[i]).Value(rueidis.BinaryString(b)).Ex(cacheTTL).Build()).Error()
			}); err != nil {
				c.Close()
				return nil, err
			}
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					if miss {
						key := env.Prefix + ":raw-miss:" + strconv.Itoa(k)
						if err := c.Do(ctx, c.B().Get().Key(key).Build()).Error(); !rueidis.IsRedisNil(err) {
							return err
						}
						b, _ := json.Marshal(product(k))
						return c.Do(ctx, c.B().Set().Key(key).Value(rueidis.BinaryString(b)).Ex(time.Minute).Build()).Error()
					}
					if cached {
						return c.DoCache(ctx, c.B().Get().Key(keys[k]).Cache(), time.Minute).Error()
					}
					return c.Do(ctx, c.B().Get().Key(keys[k]).Build()).Error()
				}
			},
			Close: c.Close,
		}, nil
	}
}

// rawCacheGoRedis is the go-redis floor: GET (or GET then SET on a miss).
func rawCacheGoRedis(miss bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		c := newGoRedis(env)
		keys := keyNames(env, "raw-cache-goredis", env.Keys)
		ctx := context.Background()
		if !miss {
			if err := fill(env.Keys, func(i int) error {
				b, _ := json.Marshal(product(i))
				return c.Set(ctx, keys[i], b, cacheTTL).Err()
			}); err != nil {
				c.Close()
				return nil, err
			}
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					if miss {
						key := env.Prefix + ":raw-miss-goredis:" + strconv.Itoa(k)
						if err := c.Get(ctx, key).Err(); err != redis.Nil {
							return err
						}
						b, _ := json.Marshal(product(k))
						return c.Set(ctx, key, b, time.Minute).Err()
					}
					_, err := c.Get(ctx, keys[k]).Bytes()
					return err
				}
			},
			Close: func() { c.Close() },
		}, nil
	}
}
