package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

var errUnexpectedLoad = errors.New("a cache hit called the loader")

// karatNS is the namespace of one karat scenario, under the run's prefix.
func karatNS(env *Env, name string) (store.Namespace, error) {
	return store.NewNamespace(env.Prefix, name)
}

// openKarat opens a karat store on the run's Redis; query is added to the
// URL ("driver=goredis", "client_cache=0"); "memory" opens the memory driver.
func openKarat(env *Env, query string) (store.Store, error) {
	if query == "memory" {
		return drivers.Open(context.Background(), "memory://")
	}
	u := env.RedisURL
	if query != "" {
		u += "?" + query
	}
	return drivers.Open(context.Background(), u)
}

var productPolicy = cache.Policy{Name: "product", TTL: cacheTTL}

// cacheTenants spreads keys over 100 tenants (shops), as the layer is used.
var cacheTenants = func() []string {
	ts := make([]string, 100)
	for i := range ts {
		ts[i] = "shop-" + strconv.Itoa(i)
	}
	return ts
}()

// karatCacheScenarios are karat's cache hit (GetOrLoad of a present entry)
// or miss (GetOrLoad of a key never stored: lease, load, fill script).
func karatCacheScenarios(miss bool) []Scenario {
	if miss {
		return []Scenario{
			{Name: "karat-rueidis", Kind: KindKarat, Setup: karatCache("", nil, true)},
			{Name: "karat-goredis", Kind: KindKarat, Setup: karatCache("driver=goredis", nil, true)},
		}
	}
	return []Scenario{
		{Name: "karat-rueidis", Kind: KindKarat, Setup: karatCache("", nil, false)},
		{Name: "karat-rueidis-nolocal", Kind: KindKarat, Setup: karatCache("", &cache.Options[Product]{LocalEntries: -1}, false)},
		{Name: "karat-rueidis-nocache", Kind: KindKarat, Setup: karatCache("client_cache=0", nil, false)},
		{Name: "karat-goredis", Kind: KindKarat, Setup: karatCache("driver=goredis", nil, false)},
	}
}

// karatCache sets up a cache.Cache[Product] with the layer's defaults (JSON
// codec, MaxStale 1 s, 10,000 local decoded values) unless opts says
// otherwise. Entries are written through a second store, as another
// process would: a store reads its own recent writes from the server.
func karatCache(query string, opts *cache.Options[Product], miss bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		s, err := openKarat(env, query)
		if err != nil {
			return nil, err
		}
		name := "karat-cache-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		ns, err := karatNS(env, name)
		if err != nil {
			s.Close()
			return nil, err
		}
		o := cache.Options[Product]{}
		if opts != nil {
			o = *opts
		}
		o.Namespace = ns
		c, err := cache.New(s, productPolicy, &o)
		if err != nil {
			s.Close()
			return nil, err
		}
		keys := make([]string, env.Keys)
		for i := range keys {
			keys[i] = "p" + strconv.Itoa(i)
		}
		if !miss {
			w, err := openKarat(env, query)
			if err != nil {
				s.Close()
				return nil, err
			}
			wc, err := cache.New(w, productPolicy, &cache.Options[Product]{Namespace: ns})
			if err == nil {
				err = fill(env.Keys, func(i int) error {
					return wc.Set(context.Background(), cacheTenants[i%len(cacheTenants)], keys[i], product(i))
				})
			}
			w.Close()
			if err != nil {
				s.Close()
				return nil, err
			}
		}
		hitLoader := func(context.Context) (Product, error) { return Product{}, errUnexpectedLoad }
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					if miss {
						p, err := c.GetOrLoad(ctx, cacheTenants[k%len(cacheTenants)], "m"+strconv.Itoa(k),
							func(context.Context) (Product, error) { return product(k), nil })
						if err == nil && p.ID != int64(k) {
							return errBadValue
						}
						return err
					}
					p, err := c.GetOrLoad(ctx, cacheTenants[k%len(cacheTenants)], keys[k], hitLoader)
					if err != nil {
						return err
					}
					if p.ID != int64(k) {
						return errBadValue
					}
					return nil
				}
			},
			Close: func() { s.Close() },
		}, nil
	}
}
