package session_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var benchSecret = [][]byte{[]byte("a benchmark secret of at least thirty-two bytes")}

// BenchmarkSession measures Validate (a valid token, which on rueidis is a
// client-side cache hit, and an unknown one), Create and Update on each
// driver, at 1 goroutine and at 64 (GOMAXPROCS × SetParallelism). Run with
//
//	go test -run '^$' -bench Session -benchtime 2s ./session/
//
// Results and the machine are in BENCHMARKS.md.
func BenchmarkSession(b *testing.B) {
	targets := []struct{ name, url string }{
		{"memory", "memory://"},
		{"goredis", "?driver=goredis"},
		{"rueidis", ""},
		{"rueidis-nocache", "?client_cache=0"},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			url := tg.url
			if url != "memory://" {
				url = redistest.Single(b).URL + url
			}
			open := func() store.Store {
				s, err := drivers.Open(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				return s
			}
			s := open()
			// Sessions are created through another store instance, as a login
			// on another server would: a store reads the keys it wrote itself
			// from the server for MaxStale (read-your-writes), which is not
			// the steady state a validation benchmark is after.
			creator := s
			if url != "memory://" {
				creator = open()
			}
			benchSession(b, s, creator)
		})
	}
}

func benchSession(b *testing.B, s, creator store.Store) {
	ctx := context.Background()
	var r [6]byte
	_, _ = rand.Read(r[:])
	ns := store.MustNamespace("karat-bench", hex.EncodeToString(r[:]))
	defer func() {
		if sc, ok := store.Capability[store.Scanner](s); ok {
			_ = sc.Scan(ctx, ns.Prefix(), func(keys []string) error {
				for _, k := range keys {
					_, _ = s.Delete(ctx, k)
				}
				return nil
			})
		}
	}()
	m, err := session.New(s, benchSecret, &session.Options{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	login, err := session.New(creator, benchSecret, &session.Options{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1024
	toks := make([]string, n)
	for i := range toks {
		if toks[i], _, err = login.Create(ctx, "user-"+strconv.Itoa(i%256), "shop", session.Meta{Device: "laptop", UserAgent: "Mozilla/5.0", IP: "192.0.2.1", Data: map[string]string{"role": "owner"}}); err != nil {
			b.Fatal(err)
		}
	}
	unknown := make([]string, n)
	for i := range unknown {
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		unknown[i] = hex.EncodeToString(raw[:])
	}
	var created atomic.Int64
	ops := []struct {
		name string
		// each returns the op a goroutine runs; i counts the goroutine's ops.
		op func(b *testing.B) func(i int) error
	}{
		{"Validate", func(*testing.B) func(int) error {
			var next atomic.Uint64
			return func(int) error { _, err := m.Validate(ctx, toks[next.Add(1)%n]); return err }
		}},
		{"ValidateUnknown", func(*testing.B) func(int) error {
			var next atomic.Uint64
			return func(int) error {
				if _, err := m.Validate(ctx, unknown[next.Add(1)%n]); err != session.ErrNotFound {
					return err
				}
				return nil
			}
		}},
		{"Create", func(*testing.B) func(int) error {
			return func(int) error {
				_, _, err := m.Create(ctx, "new-"+strconv.FormatInt(created.Add(1)%4096, 10), "shop", session.Meta{Device: "phone"})
				return err
			}
		}},
		{"Update", func(b *testing.B) func(int) error {
			// Each goroutine updates a session of its own, so no update conflicts.
			tok, sess, err := m.Create(ctx, "updater-"+strconv.FormatInt(created.Add(1), 10), "shop", session.Meta{})
			if err != nil {
				b.Fatal(err)
			}
			v := sess.Version
			data := map[string]string{"role": "clerk"}
			return func(int) error {
				var err error
				v, err = m.Update(ctx, tok, v, data)
				return err
			}
		}},
	}
	sr, hasStats := store.Capability[store.StatsReporter](s)
	_, cached := store.Capability[store.CachedReader](s)
	// hitRatio reports the share of cached reads served by the client-side
	// cache during a benchmark, on a store that has one.
	hitRatio := func(b *testing.B) func() {
		if !hasStats || !cached {
			return func() {}
		}
		before := sr.Stats()
		return func() {
			after := sr.Stats()
			hits, misses := after.CacheHits-before.CacheHits, after.CacheMisses-before.CacheMisses
			if hits+misses > 0 {
				b.ReportMetric(float64(hits)/float64(hits+misses), "hit-ratio")
			}
		}
	}
	for _, o := range ops {
		b.Run(o.name+"/g1", func(b *testing.B) {
			op := o.op(b)
			b.ReportAllocs()
			defer hitRatio(b)()
			for i := 0; b.Loop(); i++ {
				if err := op(i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(o.name+"/g64", func(b *testing.B) {
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			defer hitRatio(b)()
			shared := o.op
			if o.name != "Update" {
				op := o.op(b)
				shared = func(*testing.B) func(int) error { return op }
			}
			b.RunParallel(func(pb *testing.PB) {
				op := shared(b)
				for i := 0; pb.Next(); i++ {
					if err := op(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
