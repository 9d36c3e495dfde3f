package drivers_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// BenchmarkStore measures the store operations on each driver at 64
// goroutines (2 cores × SetParallelism(32)): single-goroutine latencies on
// two vCPUs are noise, ratios at concurrency are not. Run with
//
//	go test -run '^$' -bench Store -benchtime 2s ./drivers/
//
// Results and the machine are in BENCHMARKS.md.
func BenchmarkStore(b *testing.B) {
	targets := []struct{ name, url string }{
		{"memory", "memory://"},
		{"goredis", "?driver=goredis"},
		{"rueidis", ""},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			url := tg.url
			if url != "memory://" {
				url = redistest.Single(b).URL + url
			}
			s, err := drivers.Open(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchOps(b, s)
		})
	}
}

var casIncr = store.NewScript("bench-incr-if-below", `
local n = redis.call('INCRBY', KEYS[1], 1)
if n > tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '0') end
return n`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		limit, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return store.Value{}, err
		}
		n, err := v.IncrBy(keys[0], 1, 0)
		if err != nil {
			return store.Value{}, err
		}
		if n > limit {
			if err := v.Set(keys[0], []byte("0"), 0); err != nil {
				return store.Value{}, err
			}
		}
		return store.IntValue(n), nil
	})

func benchOps(b *testing.B, s store.Store) {
	ctx := context.Background()
	const nkeys = 1024
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i], _ = store.Key("karat-bench", strconv.Itoa(i))
		if err := s.Set(ctx, keys[i], []byte("some value of about forty bytes, say...."), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, k := range keys {
			for _, suffix := range []string{"", "-n", "-e"} {
				_, _ = s.Delete(ctx, k+suffix)
			}
		}
	}()
	run := func(name string, op func(k string) error) {
		b.Run(name, func(b *testing.B) {
			var next atomic.Uint64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(keys[next.Add(1)%nkeys]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	run("Get", func(k string) error { _, err := s.Get(ctx, k); return err })
	run("Set", func(k string) error {
		return s.Set(ctx, k, []byte("some value of about forty bytes, say...."), time.Hour)
	})
	run("IncrByTTL", func(k string) error { _, err := s.IncrBy(ctx, k+"-n", 1, time.Minute); return err })
	run("Eval", func(k string) error { _, err := s.Eval(ctx, casIncr, []string{k + "-e"}, "1000000"); return err })
	if c, ok := store.Capability[store.CachedReader](s); ok {
		run("GetCached", func(k string) error { _, err := c.GetCached(ctx, k, time.Second); return err })
	}
}

// BenchmarkVsRaw puts karat's rueidis driver beside the rueidis client it
// wraps, in one run against one server and over one client (the store's own,
// reached with As), at 1 goroutine and at 64 (2 cores × SetParallelism(32)):
//
//	go test -run '^$' -bench VsRaw -benchtime 1s ./drivers/
//
// The pairs are karat GetCached (a client-side cache hit, maxStale 1s) vs
// DoCache(GET) with the same TTL, karat Get vs GET, karat Eval vs the same
// script through rueidis.Lua (EVALSHA). The raw reads use AsBytes, which
// does not copy; karat copies every value it returns, so that a caller who
// changes the bytes cannot change the cache.
func BenchmarkVsRaw(b *testing.B) {
	s, err := drivers.Open(context.Background(), redistest.Single(b).URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var c rueidis.Client
	if !s.As(&c) {
		b.Fatal("the rueidis store does not give its client")
	}
	cr, ok := store.Capability[store.CachedReader](s)
	if !ok {
		b.Fatal("the rueidis store is not a CachedReader")
	}
	ctx := context.Background()
	const nkeys = 1024
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i], _ = store.Key("karat-bench-raw", strconv.Itoa(i))
		if err := s.Set(ctx, keys[i], []byte("some value of about forty bytes, say...."), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	defer func() { _, _ = s.Delete(ctx, keys...) }()
	lua := rueidis.NewLuaScript(casIncr.Lua())
	ops := []struct {
		name string
		op   func(k string) error
	}{
		{"GetCached/karat", func(k string) error { _, err := cr.GetCached(ctx, k, time.Second); return err }},
		{"GetCached/raw", func(k string) error {
			_, err := c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Second).AsBytes()
			return err
		}},
		{"Get/karat", func(k string) error { _, err := s.Get(ctx, k); return err }},
		{"Get/raw", func(k string) error { _, err := c.Do(ctx, c.B().Get().Key(k).Build()).AsBytes(); return err }},
		{"Eval/karat", func(k string) error { _, err := s.Eval(ctx, casIncr, []string{k + "-e"}, "1000000"); return err }},
		{"Eval/raw", func(k string) error {
			_, err := lua.Exec(ctx, c, []string{k + "-e"}, []string{"1000000"}).ToInt64()
			return err
		}},
	}
	defer func() {
		for _, k := range keys {
			_, _ = s.Delete(ctx, k+"-e")
		}
	}()
	for _, g := range []int{1, 64} {
		for _, o := range ops {
			b.Run(fmt.Sprintf("g%d/%s", g, o.name), func(b *testing.B) {
				b.ReportAllocs()
				if g == 1 {
					i := 0
					for b.Loop() {
						if err := o.op(keys[i%nkeys]); err != nil {
							b.Fatal(err)
						}
						i++
					}
					return
				}
				var next atomic.Uint64
				b.SetParallelism(g / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := o.op(keys[next.Add(1)%nkeys]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
