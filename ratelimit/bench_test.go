package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// benchPolicy never denies within a benchmark: every decision is a full
// admit (read, decide, write), the expensive path. Its interval is a whole
// millisecond, as every preset's: the PTTL+SET script.
var benchPolicy = ratelimit.Policy{Name: "bench", Limit: 1000, Window: time.Second, Burst: 1_000_000_000}

// benchPolicyUs is benchPolicy with a 3.6 µs interval: the TIME+GET+SET
// script that policies of sub-millisecond precision take.
var benchPolicyUs = ratelimit.Policy{Name: "bench-us", Limit: 1_000_000_000, Window: time.Hour}

// BenchmarkAllow measures one decision (Limiter.Allow, one store round
// trip) per driver, at 1 and 64 goroutines (2 cores × SetParallelism(32)),
// on one hot key and on 100,000 keys. Against a real redis-server it also
// runs the floor: a raw rueidis EVALSHA of a two-command script (GET, then
// SET with PX) on the same server, in the same run. Run with
//
//	go test -run '^$' -bench Allow -benchmem -benchtime 2s ./ratelimit/
func BenchmarkAllow(b *testing.B) {
	targets := []struct{ name, url string }{
		{"memory", "memory://"},
		{"goredis", "?driver=goredis"},
		{"rueidis", "?client_cache=0"},
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
			ns := store.MustNamespace("karat-bench", strconv.FormatInt(time.Now().UnixNano(), 36))
			l := ratelimit.New(s, &ratelimit.Options{Namespace: ns, Timeout: 10 * time.Second})
			keys := make([]string, 100_000)
			for i := range keys {
				keys[i] = "user:" + strconv.Itoa(i)
			}
			for _, shape := range []struct {
				name string
				keys []string
			}{{"hot", keys[:1]}, {"100k-keys", keys}} {
				b.Run(shape.name+"/g1", func(b *testing.B) {
					ctx := context.Background()
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						if _, err := l.Allow(ctx, benchPolicy, shape.keys[i%len(shape.keys)], 1); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(shape.name+"/g64", func(b *testing.B) {
					ctx := context.Background()
					var next atomic.Int64
					b.ReportAllocs()
					b.SetParallelism(32)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							i := next.Add(1)
							d, err := l.Allow(ctx, benchPolicy, shape.keys[int(i)%len(shape.keys)], 1)
							if err != nil || d.Degraded != nil {
								b.Fatal(err, d.Degraded)
							}
						}
					})
				})
			}
			var client rueidis.Client
			if tg.name == "rueidis" && s.As(&client) {
				benchRawFloor(b, client, ns)
			}
		})
	}
}

// rawTwoCommands is the floor a decision is compared with: one EVALSHA of
// a script that reads a key and writes it with a TTL.
var rawTwoCommands = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
return 1`)

func benchRawFloor(b *testing.B, client rueidis.Client, ns store.Namespace) {
	key, err := ns.TaggedKey("raw", "floor")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("raw-floor-hot/g64", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := rawTwoCommands.Exec(ctx, client, []string{key}, []string{"1"}).Error(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("raw-floor-hot/g1", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := rawTwoCommands.Exec(ctx, client, []string{key}, []string{"1"}).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDenied measures a denial answered by the "blocked until" memory:
// no store round trip.
func BenchmarkDenied(b *testing.B) {
	s, err := drivers.Open(context.Background(), "memory://")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := ratelimit.New(s, nil)
	p := ratelimit.Policy{Name: "deny", Limit: 1, Window: time.Hour}
	ctx := context.Background()
	_, _ = l.Allow(ctx, p, "k", 1)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, _ := l.Allow(ctx, p, "k", 1); d.Allowed {
				b.Fatal("allowed")
			}
		}
	})
}

// BenchmarkDecisionVsFloor interleaves, in rounds of 4,000 operations at 64
// goroutines, a decision (Limiter.Allow on rueidis, hot key, a whole-
// millisecond policy), the same for a policy of microseconds, and the raw
// floor (rueidis EVALSHA of a two-command script), so that load from
// elsewhere on the machine hits both alike; it reports each one's ns/op and
// the decision's throughput as a percentage of the floor's. Run with
//
//	go test -run '^$' -bench DecisionVsFloor -benchtime 100x ./ratelimit/
func BenchmarkDecisionVsFloor(b *testing.B) {
	srv := redistest.Single(b)
	s, err := drivers.Open(context.Background(), srv.URL+"?client_cache=0")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var client rueidis.Client
	if !s.As(&client) {
		b.Fatal("not a rueidis store")
	}
	ns := store.MustNamespace("karat-bench", strconv.FormatInt(time.Now().UnixNano(), 36))
	l := ratelimit.New(s, &ratelimit.Options{Namespace: ns, Timeout: 10 * time.Second})
	rawKey, err := ns.TaggedKey("raw", "floor")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const round, goroutines = 4000, 64
	run := func(op func() error) time.Duration {
		var next atomic.Int64
		var failed atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for next.Add(1) <= round {
					if err := op(); err != nil {
						failed.Store(err)
					}
				}
			})
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	decide := func() error {
		d, err := l.Allow(ctx, benchPolicy, "hot", 1)
		if err == nil && d.Degraded != nil {
			err = d.Degraded
		}
		return err
	}
	floor := func() error {
		return rawTwoCommands.Exec(ctx, client, []string{rawKey}, []string{"1"}).Error()
	}
	hotKey, err := ns.TaggedKey("hot", benchPolicy.Name)
	if err != nil {
		b.Fatal(err)
	}
	lean := rueidis.NewLuaScript(ratelimit.GCRATakeMsScript().Lua())
	direct := func() error {
		return lean.Exec(ctx, client, []string{hotKey}, []string{"1", "1000000000", "1"}).Error()
	}
	var viaStore time.Duration
	storeEval := func() error {
		_, err := s.Eval(ctx, ratelimit.GCRATakeMsScript(), []string{hotKey}, "1", "1000000000", "1")
		return err
	}
	decideUs := func() error {
		d, err := l.Allow(ctx, benchPolicyUs, "hot", 1)
		if err == nil && d.Degraded != nil {
			err = d.Degraded
		}
		return err
	}
	var td, tf, tl, tu time.Duration
	// The five run in turn, starting each round with the next one, so that
	// none always follows the same neighbour.
	ops := []struct {
		op  func() error
		sum *time.Duration
	}{{decide, &td}, {floor, &tf}, {direct, &tl}, {storeEval, &viaStore}, {decideUs, &tu}}
	for r := 0; b.Loop(); r++ {
		for i := range ops {
			o := ops[(r+i)%len(ops)]
			*o.sum += run(o.op)
		}
	}
	b.ReportMetric(float64(tl.Nanoseconds())/float64(b.N*round), "script-raw-ns/op")
	b.ReportMetric(float64(viaStore.Nanoseconds())/float64(b.N*round), "script-via-store-ns/op")
	n := float64(b.N * round)
	b.ReportMetric(float64(td.Nanoseconds())/n, "decision-ns/op")
	b.ReportMetric(float64(tf.Nanoseconds())/n, "floor-ns/op")
	b.ReportMetric(100*float64(tf)/float64(td), "decision-%-of-floor")
	b.ReportMetric(100*float64(tf)/float64(tu), "us-policy-decision-%-of-floor")
	b.ReportMetric(n/td.Seconds(), "decisions/s")
}

// cannedStore answers every Eval at once with an admit, in the result
// layout of the script asked for. It embeds the
// store.Store interface, not *memstore.Store, so that it does not offer
// the memory driver's store.Int64Updater: the limiter runs its script path.
type cannedStore struct{ store.Store }

var canned = store.ArrayValue(store.IntValue(1), store.IntValue(1), store.IntValue(5), store.IntValue(100), store.IntValue(0))

func (cannedStore) Eval(_ context.Context, sc *store.Script, _ []string, _ ...string) (store.Value, error) {
	if sc == ratelimit.GCRATakeMsScript() {
		return store.IntValue(100), nil // admitted; 100 ms of the bucket used
	}
	return canned, nil
}

// cannedUpdater answers every UpdateInt64 at once with an admit, without
// calling the function: the in-process path with nothing behind it.
type cannedUpdater struct{ store.Store }

func (cannedUpdater) UpdateInt64(_ context.Context, _ string, _ store.Int64Func, u store.Int64Update) (store.Int64Update, error) {
	u.Result = [4]int64{1, 5, 100, 0}
	return u, nil
}

// BenchmarkLayerOverhead is the layer's own cost per decision: Allow over
// a store whose Eval answers at once with a canned admit (script), and over
// one whose UpdateInt64 does (in-process, the memory driver's path).
func BenchmarkLayerOverhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		s    store.Store
	}{
		{"script", cannedStore{memstore.New(nil)}},
		{"in-process", cannedUpdater{memstore.New(nil)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := ratelimit.New(tc.s, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = l.Allow(ctx, benchPolicy, "hot", 1)
			}
		})
	}
}
