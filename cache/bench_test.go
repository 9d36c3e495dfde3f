package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type kpi struct {
	Revenue int64
	Orders  int
	Label   string
}

// BenchmarkCache measures a hot hit, a miss with a load, and a tenant
// invalidation on each driver, at 1 goroutine and at 64 (2 cores ×
// SetParallelism(32)); "GetCached" is the store's own client-side cache hit
// in the same run, the yardstick for a hot hit on rueidis. Run with
//
//	go test -run '^$' -bench Cache -benchmem ./cache/
func BenchmarkCache(b *testing.B) {
	for _, tg := range []struct{ name, url string }{
		{"memory", "memory://"},
		{"goredis", "?driver=goredis"},
		{"rueidis", ""},
	} {
		b.Run(tg.name, func(b *testing.B) {
			url := tg.url
			if url != "memory://" {
				url = redistest.Single(b).URL + url
			}
			ctx := context.Background()
			s, err := drivers.Open(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Setup writes go through another client: a client reads its own
			// writes from the server for MaxStale after them.
			w := s
			if url != "memory://" {
				if w, err = drivers.Open(ctx, url); err != nil {
					b.Fatal(err)
				}
				defer w.Close()
			}
			var rnd [6]byte
			_, _ = rand.Read(rnd[:])
			ns := store.MustNamespace("karat-bench-" + hex.EncodeToString(rnd[:]))
			defer cleanup(b, s, ns)
			for _, g := range []int{1, 64} {
				suffix := "/g=" + strconv.Itoa(g)
				b.Run("Hit"+suffix, func(b *testing.B) { benchHit(b, s, w, ns, g, nil) })
				b.Run("HitNoLocal"+suffix, func(b *testing.B) {
					benchHit(b, s, w, ns, g, &cache.Options[kpi]{Namespace: ns, LocalEntries: -1})
				})
				if cr, ok := store.Capability[store.CachedReader](s); ok {
					b.Run("GetCached"+suffix, func(b *testing.B) { benchGetCached(b, w, cr, ns, g) })
				}
				b.Run("MissLoad"+suffix, func(b *testing.B) { benchMiss(b, s, ns, g) })
				b.Run("InvalidateTenant"+suffix, func(b *testing.B) { benchInvalidate(b, s, ns, g) })
			}
		})
	}
}

func run(b *testing.B, g int, op func(i int64)) {
	b.ReportAllocs()
	var n atomic.Int64
	if g == 1 {
		for b.Loop() {
			op(n.Add(1))
		}
		return
	}
	b.SetParallelism(g / 2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op(n.Add(1))
		}
	})
}

func benchHit(b *testing.B, s, w store.Store, ns store.Namespace, g int, opts *cache.Options[kpi]) {
	ctx := context.Background()
	if opts == nil {
		opts = &cache.Options[kpi]{Namespace: ns}
	}
	c, err := cache.New(s, cache.Policy{Name: "kpi", TTL: time.Hour}, opts)
	if err != nil {
		b.Fatal(err)
	}
	v := kpi{Revenue: 123456, Orders: 42, Label: "today"}
	writer, err := cache.New(w, cache.Policy{Name: "kpi", TTL: time.Hour}, &cache.Options[kpi]{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	if err := writer.Set(ctx, "shop-1", "revenue", v); err != nil {
		b.Fatal(err)
	}
	load := func(context.Context) (kpi, error) { b.Error("a hot hit loaded"); return kpi{}, nil }
	run(b, g, func(int64) {
		got, err := c.GetOrLoad(ctx, "shop-1", "revenue", load)
		if err != nil || got != v {
			b.Fatalf("%v, %v", got, err)
		}
	})
}

func benchGetCached(b *testing.B, w store.Store, cr store.CachedReader, ns store.Namespace, g int) {
	ctx := context.Background()
	k, _ := ns.Key("raw", "revenue")
	if err := w.Set(ctx, k, []byte(`{"Revenue":123456,"Orders":42,"Label":"today"}`), time.Hour); err != nil {
		b.Fatal(err)
	}
	run(b, g, func(int64) {
		// Half a second: what the cache asks for with its default MaxStale.
		if _, err := cr.GetCached(ctx, k, 500*time.Millisecond); err != nil {
			b.Fatal(err)
		}
	})
}

func benchMiss(b *testing.B, s store.Store, ns store.Namespace, g int) {
	ctx := context.Background()
	c, err := cache.New(s, cache.Policy{Name: "miss", TTL: time.Minute}, &cache.Options[kpi]{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	load := func(context.Context) (kpi, error) { return kpi{Revenue: 1, Orders: 2, Label: "loaded"}, nil }
	prefix := "k" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	run(b, g, func(i int64) {
		if _, err := c.GetOrLoad(ctx, "miss-shop-"+strconv.FormatInt(i%64, 10), prefix+strconv.FormatInt(i, 10), load); err != nil {
			b.Fatal(err)
		}
	})
}

func benchInvalidate(b *testing.B, s store.Store, ns store.Namespace, g int) {
	ctx := context.Background()
	c, err := cache.New(s, cache.Policy{Name: "inv", TTL: time.Minute}, &cache.Options[kpi]{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	run(b, g, func(i int64) {
		if err := c.InvalidateTenant(ctx, "inv-shop-"+strconv.FormatInt(i%64, 10)); err != nil {
			b.Fatal(err)
		}
	})
}

func cleanup(b *testing.B, s store.Store, ns store.Namespace) {
	sc, ok := store.Capability[store.Scanner](s)
	if !ok {
		return
	}
	ctx := context.Background()
	err := sc.Scan(ctx, ns.Prefix(), func(keys []string) error {
		for _, k := range keys {
			if _, err := s.Delete(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Errorf("cleanup: %v", err)
	}
}
