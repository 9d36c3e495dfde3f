package main

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/store"
)

// Kind says what a scenario is: karat itself, a peer library, or a raw
// client floor (the least work a client library can do for the job).
type Kind string

// The kinds of scenario.
const (
	KindKarat Kind = "karat"
	KindPeer  Kind = "peer"
	KindFloor Kind = "floor"
)

// Keyspace is how a run picks the key of each operation.
type Keyspace string

// The keyspaces. Hot is one key every goroutine hits; Spread is a key drawn
// at random from Env.Keys keys written beforehand; Unique is a key no
// operation used before (a cache miss every time).
const (
	Hot    Keyspace = "hot"
	Spread Keyspace = "spread"
	Unique Keyspace = "unique"
)

// Op is one operation of a scenario, run by one goroutine; key is the index
// of the key to use (0 for Hot, [0, Env.Keys) for Spread, a never-used
// number for Unique). An Op returns an error only for a failure, never for
// a denial or a miss the scenario expects.
type Op func(ctx context.Context, key int) error

// Instance is a scenario set up and ready: NewOp is called once per worker
// goroutine (so an Op may keep scratch state), Close releases it.
type Instance struct {
	NewOp func() Op
	Close func()
}

// Scenario is one way of doing a group's job.
type Scenario struct {
	Name  string
	Kind  Kind
	Setup func(env *Env) (*Instance, error)
}

// Group is one job (validate a session, read a cache hit, ...) done by
// karat, its peers and a raw floor, measured under the same cases.
type Group struct {
	Name      string
	Title     string
	Keyspaces []Keyspace
	Scenarios []Scenario
}

// Env is what every scenario's Setup gets.
type Env struct {
	RedisAddr string // host:port
	RedisURL  string // redis://host:port[/db]
	DB        int
	Prefix    string // every key a scenario writes begins with it
	Keys      int    // size of the Spread keyspace
}

// Case is one cell of the matrix a group is measured on.
type Case struct {
	Goroutines int
	Keyspace   Keyspace
}

func (c Case) String() string { return fmt.Sprintf("%d goroutines, %s", c.Goroutines, c.Keyspace) }

// sample is one timed run of one scenario under one case.
type sample struct {
	ops, errs uint64
	timeouts  uint64 // errors that are deadlines or an unavailable store
	elapsed   time.Duration
	mallocs   uint64
	hist      *histogram
	firstErr  error
}

var uniqueBase atomic.Uint64

// runOnce runs inst under c for d and measures it.
func runOnce(inst *Instance, c Case, keys int, d time.Duration) sample {
	ops := make([]Op, c.Goroutines)
	for i := range ops {
		ops[i] = inst.NewOp()
	}
	hists := make([]histogram, c.Goroutines)
	counts := make([]struct {
		ops, errs uint64
		timeouts  uint64
		err       error
		_         [40]byte // keep workers' counters on separate cache lines
	}, c.Goroutines)
	base := uniqueBase.Add(1 << 40)
	var stop atomic.Bool
	var wg sync.WaitGroup
	ctx := context.Background()
	start := make(chan struct{})
	for w := range c.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op, h, cnt := ops[w], &hists[w], &counts[w]
			rng := uint64(w)*0x9E3779B97F4A7C15 + base | 1
			seq := base + uint64(w)<<32
			<-start
			for !stop.Load() {
				var k int
				switch c.Keyspace {
				case Spread:
					rng ^= rng << 13
					rng ^= rng >> 7
					rng ^= rng << 17
					k = int(rng % uint64(keys))
				case Unique:
					seq++
					k = int(seq)
				}
				t0 := time.Now()
				err := op(ctx, k)
				h.add(uint64(time.Since(t0)))
				cnt.ops++
				if err != nil {
					cnt.errs++
					if isTimeout(err) {
						cnt.timeouts++
					} else if cnt.err == nil || isTimeout(cnt.err) {
						cnt.err = err // keep a failure that is not a timeout, if any
					}
					if cnt.err == nil {
						cnt.err = err
					}
				}
			}
		}()
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	close(start)
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(t0)
	runtime.ReadMemStats(&m1)
	s := sample{elapsed: elapsed, mallocs: m1.Mallocs - m0.Mallocs, hist: &histogram{}}
	for w := range counts {
		s.ops += counts[w].ops
		s.errs += counts[w].errs
		s.timeouts += counts[w].timeouts
		if e := counts[w].err; e != nil && (s.firstErr == nil || isTimeout(s.firstErr) && !isTimeout(e)) {
			s.firstErr = e
		}
		s.hist.merge(&hists[w])
	}
	return s
}

// Result is a scenario's figures under one case, over every round.
type Result struct {
	Group       string    `json:"group"`
	Scenario    string    `json:"scenario"`
	Kind        Kind      `json:"kind"`
	Goroutines  int       `json:"goroutines"`
	Keyspace    Keyspace  `json:"keyspace"`
	OpsPerSec   float64   `json:"ops_per_sec"` // median over rounds
	RoundsOps   []float64 `json:"rounds_ops_per_sec"`
	P50         float64   `json:"p50_ns"`
	P99         float64   `json:"p99_ns"`
	AllocsPerOp float64   `json:"allocs_per_op"`
	// CommandsPerOp is the Redis commands the server processed per
	// operation during the timed runs (INFO total_commands_processed): 0
	// means the job was done without a round trip; -1 unknown.
	CommandsPerOp float64 `json:"redis_commands_per_op"`
	Ops           uint64  `json:"ops"`
	Errors        uint64  `json:"errors"`
	Timeouts      uint64  `json:"timeouts"` // of Errors, those that are deadlines or an unavailable store: speed, not failure
	FirstError    string  `json:"first_error,omitempty"`
	VsBestPeer    float64 `json:"vs_best_peer,omitempty"` // ops/s ÷ the best peer's, same group and case
	VsFloor       float64 `json:"vs_floor,omitempty"`     // ops/s ÷ the floor's, same group and case
	SetupError    string  `json:"setup_error,omitempty"`
	hist          *histogram
	mallocs       uint64
	commands      uint64
}

// histogram is a log-linear latency histogram in nanoseconds: 32 buckets
// per power of two (about 3% resolution), no allocation to record.
type histogram struct {
	b [2048]uint64
}

func bucketOf(v uint64) int {
	if v < 32 {
		return int(v)
	}
	shift := bits.Len64(v) - 6
	return (shift+1)*32 + int(v>>shift) - 32
}

func bucketValue(i int) float64 {
	if i < 32 {
		return float64(i)
	}
	shift := i/32 - 1
	mant := uint64(i%32 + 32)
	return float64(mant<<shift) + float64(uint64(1)<<shift)/2
}

func (h *histogram) add(v uint64) { h.b[bucketOf(v)]++ }

func (h *histogram) merge(o *histogram) {
	for i := range h.b {
		h.b[i] += o.b[i]
	}
}

// quantile returns the q-quantile (0 < q <= 1) in ns, 0 when empty.
func (h *histogram) quantile(q float64) float64 {
	var n uint64
	for _, c := range h.b {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.b {
		seen += c
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return bucketValue(len(h.b) - 1)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios fills VsBestPeer and VsFloor of the results of one group and case.
func ratios(rs []*Result) {
	var bestPeer, floor float64
	for _, r := range rs {
		if r.SetupError != "" || r.Errors > 0 {
			continue
		}
		switch r.Kind {
		case KindPeer:
			bestPeer = max(bestPeer, r.OpsPerSec)
		case KindFloor:
			floor = max(floor, r.OpsPerSec)
		}
	}
	for _, r := range rs {
		if r.SetupError != "" {
			continue
		}
		if bestPeer > 0 {
			r.VsBestPeer = r.OpsPerSec / bestPeer
		}
		if floor > 0 {
			r.VsFloor = r.OpsPerSec / floor
		}
	}
}

// isTimeout reports whether err is a deadline or an unavailable store: on a
// loaded machine that is a matter of speed, which --quick does not judge.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrUnavailable)
}
