package faulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	// callTimeout is every call's own deadline under fault.
	callTimeout = 300 * time.Millisecond
	// callSlack is how late past its deadline a call may return before it
	// counts as a hang (the machine is shared and loaded).
	callSlack = 750 * time.Millisecond
	// recoveryBound is how soon after the server's return every layer must
	// work again.
	recoveryBound = 2 * time.Second
)

// driverNames are the Redis drivers every scenario runs on.
var driverNames = []string{"rueidis", "goredis"}

// withDriver adds driver=name to a store URL.
func withDriver(url, name string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "driver=" + name
}

// openStore opens url; the caller closes the store (the leak check needs
// it closed before it counts).
func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := drivers.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return s
}

var secret = bytes.Repeat([]byte("k"), 32)

// stack is the three layers over one store, under a namespace of the test's
// own.
type stack struct {
	ns    store.Namespace
	s     store.Store
	sess  *session.Manager
	cache *cache.Cache[string]
	rl    *ratelimit.Limiter
}

// openPolicy is a rate-limit policy that must keep serving through an
// outage; probe uses it to tell a decision of the store from a degraded one.
var openPolicy = ratelimit.Policy{Name: "fault-open", Limit: 1_000_000, Window: time.Minute, FailMode: ratelimit.FailOpen}

func newStack(t *testing.T, s store.Store, sessOpts *session.Options) *stack {
	t.Helper()
	return newStackIn(t, s, testNamespace(t), sessOpts)
}

// testNamespace is a namespace of the test's own.
func testNamespace(t *testing.T) store.Namespace {
	return store.MustNamespace("karat-fault", fmt.Sprintf("%s-%d", t.Name(), rand.Int64()))
}

// newStackIn is newStack under ns, so that two stacks (two instances of an
// application) can share their data.
func newStackIn(t *testing.T, s store.Store, ns store.Namespace, sessOpts *session.Options) *stack {
	t.Helper()
	var so session.Options
	if sessOpts != nil {
		so = *sessOpts
	}
	so.Namespace = ns
	m, err := session.New(s, [][]byte{secret}, &so)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New[string](s, cache.Policy{Name: "fault", TTL: time.Hour}, &cache.Options[string]{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	rl := ratelimit.New(s, &ratelimit.Options{Namespace: ns})
	return &stack{ns: ns, s: s, sess: m, cache: c, rl: rl}
}

// probe runs one round on every layer and returns the first failure: a
// session created and validated, a cache entry written and read back, a
// rate-limit decision made by the store (not by a fail mode).
func (st *stack) probe(ctx context.Context) error {
	user := fmt.Sprintf("probe-%d", rand.Int64())
	tok, _, err := st.sess.Create(ctx, user, "shop", session.Meta{Device: "probe"})
	if err != nil {
		return fmt.Errorf("session create: %w", err)
	}
	if _, err := st.sess.Validate(ctx, tok); err != nil {
		return fmt.Errorf("session validate: %w", err)
	}
	if err := st.cache.Set(ctx, "shop", user, "v"); err != nil {
		return fmt.Errorf("cache set: %w", err)
	}
	if v, err := st.cache.Get(ctx, "shop", user); err != nil || v != "v" {
		return fmt.Errorf("cache get: %q, %w", v, err)
	}
	d, err := st.rl.Allow(ctx, openPolicy, user, 1)
	if err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	if d.Degraded != nil {
		return fmt.Errorf("ratelimit degraded: %w", d.Degraded)
	}
	return nil
}

// waitRecovered polls probe (each round bounded by callTimeout) from now
// until it passes, and returns how long that took; it fails the test after
// limit.
func (st *stack) waitRecovered(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < limit {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		last = st.probe(ctx)
		cancel()
		if last == nil {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
	t.Fatalf("not recovered within %v: %v", limit, last)
	return 0
}

// typed reports whether err is one of the errors a caller can act on.
func typed(err error) bool {
	for _, want := range []error{store.ErrUnavailable, store.ErrClosed, session.ErrNotFound,
		cache.ErrNotFound, context.DeadlineExceeded} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// traffic runs calls on every layer from several goroutines, each with its
// own deadline, and records what went wrong: an untyped error, or a call
// that returned later than its deadline plus callSlack.
type traffic struct {
	crew
	st *stack

	ok, failed atomic.Int64
	maxLate    atomic.Int64 // the longest call, in ns
}

// crew is a set of goroutines that run until halted (each returns when stop is
// closed), and the problems they saw, the first 20 kept. Both traffic
// generators of the fault tests embed it.
type crew struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu       sync.Mutex // guards problems, and whatever the embedding type says
	problems []string
}

// halt stops the workers and waits for them; it may be called more than once.
func (w *crew) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *crew) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problemLocked(fmt.Sprintf(format, args...))
}

func (w *crew) problemLocked(p string) {
	if len(w.problems) < 20 {
		w.problems = append(w.problems, p)
	}
}

// report halts the workers and fails t on every problem they saw.
func (w *crew) report(t *testing.T) {
	t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
}

func startTraffic(t *testing.T, st *stack, workers int) *traffic {
	t.Helper()
	tr := &traffic{crew: crew{stop: make(chan struct{})}, st: st}
	t.Cleanup(tr.halt) // a test that fails early must not leave traffic running
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, _, err := st.sess.Create(ctx, "traffic-user", "shop", session.Meta{Device: "traffic"})
	if err != nil {
		t.Fatal(err)
	}
	for w := range workers {
		tr.wg.Go(func() { tr.run(w, tok) })
	}
	return tr
}

func (tr *traffic) run(w int, tok string) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-tr.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		start := time.Now()
		var err error
		var what string
		switch i % 4 {
		case 0:
			what = "session validate"
			_, err = tr.st.sess.Validate(ctx, tok)
		case 1:
			what = "cache set"
			err = tr.st.cache.Set(ctx, "shop", fmt.Sprint("k", w), "v")
		case 2:
			what = "cache get"
			_, err = tr.st.cache.Get(ctx, "shop", fmt.Sprint("k", w))
		case 3:
			what = "ratelimit allow"
			var d ratelimit.Decision
			d, err = tr.st.rl.Allow(ctx, openPolicy, fmt.Sprint("w", w), 1)
			if err == nil && !d.Allowed {
				tr.problem("ratelimit: a FailOpen policy far below its limit denied: %+v", d)
			}
		}
		took := time.Since(start)
		cancel()
		if int64(took) > tr.maxLate.Load() {
			tr.maxLate.Store(int64(took))
		}
		if took > callTimeout+callSlack {
			tr.problem("%s took %v, deadline %v", what, took, callTimeout)
		}
		if err == nil {
			tr.ok.Add(1)
			continue
		}
		tr.failed.Add(1)
		if !typed(err) {
			tr.problem("%s: untyped error %v", what, err)
		}
	}
}

// finish stops the traffic and fails the test on any problem it saw.
func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	tr.report(t)
	t.Logf("traffic: %d calls ok, %d failed (typed), longest call %v",
		tr.ok.Load(), tr.failed.Load(), time.Duration(tr.maxLate.Load()))
	if tr.ok.Load() == 0 {
		t.Error("traffic: no call succeeded at all")
	}
}

// waitFailing polls until the layers report the store unavailable, so that
// a check made after it runs while the fault is seen.
func (st *stack) waitFailing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := st.probe(ctx)
		cancel()
		if err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
	t.Fatal("the layers never saw the fault")
}

// checkFailModes asserts, while the store is away, that each policy
// follows its fail mode: open admits (even past its limit), closed denies
// with a Retry-After, local admits its share and then denies; each with
// Degraded set, each call within its deadline.
func checkFailModes(t *testing.T, rl *ratelimit.Limiter) {
	t.Helper()
	key := fmt.Sprint("failmode-", rand.Int64())
	open := ratelimit.Policy{Name: "fm-open", Limit: 2, Window: time.Minute, FailMode: ratelimit.FailOpen}
	closed := ratelimit.Policy{Name: "fm-closed", Limit: 100, Window: time.Minute, FailMode: ratelimit.FailClosed}
	local := ratelimit.Policy{Name: "fm-local", Limit: 10, Window: time.Minute, FailMode: ratelimit.FailLocal, LocalShare: 0.5}
	allow := func(p ratelimit.Policy) ratelimit.Decision {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		start := time.Now()
		d, err := rl.Allow(ctx, p, key, 1)
		if took := time.Since(start); took > callTimeout+callSlack {
			t.Errorf("%s: Allow took %v", p.Name, took)
		}
		if err != nil {
			t.Fatalf("%s: Allow returned an error for good input: %v", p.Name, err)
		}
		if d.Degraded == nil {
			t.Fatalf("%s: decision not degraded while the store is away: %+v", p.Name, d)
		}
		if !errors.Is(d.Degraded, store.ErrUnavailable) && !errors.Is(d.Degraded, context.DeadlineExceeded) {
			t.Errorf("%s: Degraded is not a store outage: %v", p.Name, d.Degraded)
		}
		return d
	}
	for i := range 4 {
		if d := allow(open); !d.Allowed {
			t.Errorf("FailOpen call %d denied: %+v", i, d)
		}
	}
	for i := range 2 {
		if d := allow(closed); d.Allowed || d.RetryAfter <= 0 {
			t.Errorf("FailClosed call %d: allowed %v, retry after %v; want denied with a Retry-After", i, d.Allowed, d.RetryAfter)
		}
	}
	admitted := 0
	for range 8 {
		if allow(local).Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("FailLocal (10/min, share 0.5) admitted %d of 8 while the store was away, want 5", admitted)
	}
}

// goroutinesBack polls until the goroutine count is at most before, and
// fails with the stacks of the goroutines left otherwise.
func goroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			t.Logf("goroutines: %d before, %d after", before, n)
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("goroutine leak: %d before, %d 15s after closing:\n%s", before, n, b.String())
		}
		time.Sleep(20 * time.Millisecond) // polling up to a deadline
	}
}

// figure logs a measured figure in a form RELIABILITY.md quotes.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("figure: %s: %s", t.Name(), fmt.Sprintf(format, args...))
}
