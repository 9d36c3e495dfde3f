package main

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose representative is within 3.2%.
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 100, 1000, 12345, 1 << 20, 987654321, 1 << 40, math.MaxUint64 >> 1} {
		b := bucketOf(v)
		if b < 0 || b >= len(histogram{}.b) {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, b)
		}
		got := bucketValue(b)
		if v >= 32 && math.Abs(got-float64(v))/float64(v) > 0.032 {
			t.Errorf("bucketValue(bucketOf(%d)) = %.0f, more than 3.2%% off", v, got)
		}
		if v < 32 && got != float64(v) {
			t.Errorf("bucketValue(bucketOf(%d)) = %.0f, want exact", v, got)
		}
	}
	// Buckets are monotonic.
	prev := -1
	for v := uint64(0); v < 1<<16; v++ {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf(%d) = %d", v, b, v-1, prev)
		}
		prev = b
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.add(uint64(i) * 1000) // 1 µs .. 1 ms
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500_000}, {0.99, 990_000}, {1, 1_000_000}} {
		if got := h.quantile(c.q); math.Abs(got-c.want)/c.want > 0.035 {
			t.Errorf("quantile(%v) = %.0f, want about %.0f", c.q, got, c.want)
		}
	}
	var o histogram
	o.add(5)
	h.merge(&o)
	if h.quantile(0.0001) != 5 {
		t.Errorf("merge lost the smallest value: %v", h.quantile(0.0001))
	}
}

func TestRatios(t *testing.T) {
	rs := []*Result{
		{Scenario: "karat", Kind: KindKarat, OpsPerSec: 300},
		{Scenario: "peer-a", Kind: KindPeer, OpsPerSec: 100},
		{Scenario: "peer-b", Kind: KindPeer, OpsPerSec: 150},
		{Scenario: "peer-broken", Kind: KindPeer, OpsPerSec: 1000, Errors: 3},
		{Scenario: "floor", Kind: KindFloor, OpsPerSec: 400},
		{Scenario: "unset", Kind: KindPeer, SetupError: "no"},
	}
	ratios(rs)
	if rs[0].VsBestPeer != 2 || rs[0].VsFloor != 0.75 {
		t.Errorf("karat: vs best peer %v, vs floor %v; want 2 and 0.75 (a peer with errors is not the best peer)", rs[0].VsBestPeer, rs[0].VsFloor)
	}
	if rs[5].VsBestPeer != 0 {
		t.Error("a scenario that failed to set up got a ratio")
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median(nil) = %v", m)
	}
}

func TestRunOnceCountsAndKeys(t *testing.T) {
	const keys = 10
	var hits [keys]atomic.Uint64
	var outOfRange, calls atomic.Uint64
	errOdd := errors.New("odd")
	inst := &Instance{NewOp: func() Op {
		return func(_ context.Context, k int) error {
			calls.Add(1)
			if k < 0 || k >= keys {
				outOfRange.Add(1)
				return nil
			}
			hits[k].Add(1)
			if k%2 == 1 {
				return errOdd
			}
			return nil
		}
	}}
	s := runOnce(inst, Case{Goroutines: 4, Keyspace: Spread}, keys, 20*time.Millisecond)
	if outOfRange.Load() != 0 {
		t.Fatalf("%d keys out of range", outOfRange.Load())
	}
	if s.ops != calls.Load() || s.ops == 0 {
		t.Fatalf("ops %d, calls %d", s.ops, calls.Load())
	}
	var odd uint64
	for k := range hits {
		if hits[k].Load() == 0 {
			t.Errorf("key %d never drawn in %d ops", k, s.ops)
		}
		if k%2 == 1 {
			odd += hits[k].Load()
		}
	}
	if s.errs != odd || !errors.Is(s.firstErr, errOdd) {
		t.Errorf("errs %d (first %v), want %d", s.errs, s.firstErr, odd)
	}

	// Unique keys are never repeated, across runs either.
	seen := map[int]bool{}
	var mu sync.Mutex
	uniq := &Instance{NewOp: func() Op {
		return func(_ context.Context, k int) error {
			mu.Lock()
			defer mu.Unlock()
			if seen[k] {
				t.Errorf("unique key %d repeated", k)
			}
			seen[k] = true
			return nil
		}
	}}
	runOnce(uniq, Case{Goroutines: 3, Keyspace: Unique}, keys, 5*time.Millisecond)
	runOnce(uniq, Case{Goroutines: 3, Keyspace: Unique}, keys, 5*time.Millisecond)
}

func TestPlotRatios(t *testing.T) {
	rep := &Report{Keys: 100, Results: []*Result{
		{Group: "g", Scenario: "karat-x", Kind: KindKarat, Goroutines: 64, Keyspace: Hot, VsBestPeer: 2.5},
		{Group: "g", Scenario: "karat-x", Kind: KindKarat, Goroutines: 64, Keyspace: Spread, VsBestPeer: 0.5},
		{Group: "g", Scenario: "peer", Kind: KindPeer, Goroutines: 64, Keyspace: Hot, VsBestPeer: 1},
	}}
	f := filepath.Join(t.TempDir(), "r.svg")
	if err := plotRatios(rep, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "karat-x") {
		t.Errorf("not an SVG naming the scenario: %.200s", b)
	}
	if err := plotRatios(&Report{}, f); err == nil {
		t.Error("an empty report plotted")
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--quick", "--goroutines", "1,8"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rounds != 1 || cfg.duration != 20*time.Millisecond || cfg.keys != 1000 || len(cfg.goroutines) != 2 {
		t.Errorf("--quick: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--quick", "--rounds", "2"})
	if err != nil || cfg.rounds != 2 {
		t.Errorf("--quick must not override an explicit --rounds: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"--goroutines", "0"}, {"--rounds", "0"}, {"--only", "("}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
