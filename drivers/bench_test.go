package drivers_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
// reached with As), at 1 goroutine and at 64 (2 cores × 32):
//
//	go test -run '^$' -bench VsRaw -benchtime 2s ./drivers/
//
// The pairs are karat GetCached (a client-side cache hit, maxStale 1s) vs
// DoCache(GET) with the same TTL, karat Get vs GET, karat Eval vs the same
// script through rueidis.Lua (EVALSHA). The raw reads use AsBytes, which
// does not copy; karat copies every value it returns, so that a caller who
// changes the bytes cannot change the cache. GetCachedVsCopy is the hit
// again, against a raw read that copies too; GetCachedString is
// rueidisstore's hit without the copy (a string shares the cache's memory
// safely) against DoCache(...).ToString().
//
// The two sides of a pair run in alternating rounds of roundOps calls each
// (the order swapped every round), so that the load of a shared machine
// falls on both alike. Each reports karat-ns/op and raw-ns/op (wall time per
// call, all goroutines together), karat/raw, karat's throughput as a
// fraction of the raw client's (raw-ns/op ÷ karat-ns/op), and karat/raw-cpu,
// the same ratio of the process's CPU time per call, which a busy neighbour
// disturbs less. Linux and the BSDs only (getrusage).
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
	defer func() {
		for _, k := range keys {
			_, _ = s.Delete(ctx, k, k+"-e")
		}
	}()
	type stringReader interface {
		GetCachedString(ctx context.Context, key string, maxStale time.Duration) (string, error)
	}
	sr, ok := s.(stringReader)
	if !ok {
		b.Fatal("the rueidis store has no GetCachedString")
	}
	lua := rueidis.NewLuaScript(casIncr.Lua())
	pairs := []struct {
		name       string
		karat, raw func(k string) error
	}{
		{"GetCached",
			func(k string) error { _, err := cr.GetCached(ctx, k, time.Second); return err },
			func(k string) error {
				_, err := c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Second).AsBytes()
				return err
			}},
		// The same hit against a raw read that copies the value, as karat
		// must (the caller owns what Get returns): the rest of the gap.
		{"GetCachedVsCopy",
			func(k string) error { _, err := cr.GetCached(ctx, k, time.Second); return err },
			func(k string) error {
				str, err := c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Second).ToString()
				sink = []byte(str)
				return err
			}},
		// The hit without the copy: rueidisstore's GetCachedString.
		{"GetCachedString",
			func(k string) error { _, err := sr.GetCachedString(ctx, k, time.Second); return err },
			func(k string) error {
				_, err := c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Second).ToString()
				return err
			}},
		{"Get",
			func(k string) error { _, err := s.Get(ctx, k); return err },
			func(k string) error { _, err := c.Do(ctx, c.B().Get().Key(k).Build()).AsBytes(); return err }},
		{"Eval",
			func(k string) error { _, err := s.Eval(ctx, casIncr, []string{k + "-e"}, "1000000"); return err },
			func(k string) error {
				_, err := lua.Exec(ctx, c, []string{k + "-e"}, []string{"1000000"}).ToInt64()
				return err
			}},
	}
	for _, g := range []int{1, 64} {
		for _, p := range pairs {
			b.Run(fmt.Sprintf("g%d/%s", g, p.name), func(b *testing.B) {
				karat, raw := pairedRounds(b, g, p.karat, p.raw, keys)
				b.ReportMetric(float64(karat.wall)/float64(b.N), "karat-ns/op")
				b.ReportMetric(float64(raw.wall)/float64(b.N), "raw-ns/op")
				b.ReportMetric(float64(raw.wall)/float64(karat.wall), "karat/raw")
				b.ReportMetric(float64(raw.cpu)/float64(karat.cpu), "karat/raw-cpu")
			})
		}
	}
}

// sink keeps the compiler from dropping a copy.
var sink []byte

// roundOps is how many calls each side of a pair makes in one round.
const roundOps = 2048

// cost is what one side of a pair took: wall time, and CPU time of the whole
// process (this benchmark's goroutines, rueidis's and the runtime's).
type cost struct{ wall, cpu time.Duration }

// processCPU returns the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pairedRounds makes b.N calls of each of karat and raw with g goroutines, in
// alternating rounds, and returns what each side took in total. On a machine
// shared with other work, wall time swings with the neighbours' load; the
// CPU time a side used is steadier (for a cache hit, which never leaves the
// process, it is the whole cost).
func pairedRounds(b *testing.B, g int, karat, raw func(k string) error, keys []string) (ck, cr cost) {
	type job struct {
		op func(k string) error
		n  int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var next atomic.Uint64
	var failed atomic.Bool
	for range g {
		go func() {
			for j := range jobs {
				for range j.n {
					if err := j.op(keys[next.Add(1)%uint64(len(keys))]); err != nil && !failed.Swap(true) {
						b.Error(err)
					}
				}
				wg.Done()
			}
		}()
	}
	defer close(jobs)
	run := func(op func(k string) error, n int, c *cost) {
		cpu, start := processCPU(b), time.Now()
		wg.Add(g)
		for i := range g {
			jobs <- job{op, n/g + boolInt(i < n%g)}
		}
		wg.Wait()
		c.wall += time.Since(start)
		c.cpu += processCPU(b) - cpu
	}
	// Warm up both sides (fill the cache, load the script).
	var warm cost
	run(karat, g, &warm)
	run(raw, g, &warm)
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(roundOps, b.N-done)
		if round%2 == 0 {
			run(karat, n, &ck)
			run(raw, n, &cr)
		} else {
			run(raw, n, &cr)
			run(karat, n, &ck)
		}
		done += n
	}
	return ck, cr
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
