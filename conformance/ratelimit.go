package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

var rateLimitCases = []storeCase{
	{"ScriptBodiesAgree", testRLScriptBodiesAgree},
	{"Exactness", testRLExactness},
	{"ExactnessSlidingWindow", testRLExactnessSliding},
	{"ExactnessAcrossProcesses", testRLExactnessProcesses},
	{"WindowBoundary", testRLWindowBoundary},
	{"DenyWithoutCharge", testRLDenyWithoutCharge},
	{"CostAboveBurst", testRLCostAboveBurst},
	{"PeekIdempotent", testRLPeekIdempotent},
	{"WindowsAllLimit", testRLWindowsAllLimit},
	{"KeyTTLs", testRLKeyTTLs},
	{"AppClockShift", testRLAppClockShift},
	{"MultiPolicySameSubject", testRLMultiSameSubject},
	{"MultiPolicyAcrossSubjects", testRLMultiAcrossSubjects},
	{"BlockedUntil", testRLBlockedUntil},
	{"Reset", testRLReset},
	{"HostileKeys", testRLHostileKeys},
	{"SpoofedHeaders", testRLSpoofedHeaders},
	{"FailModes", testRLFailModes},
}

// RunRateLimit runs the ratelimit layer's cases against stores from
// newHarness, each case on a harness of its own, as subtests named after the
// cases.
func RunRateLimit(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	for _, c := range rateLimitCases {
		t.Run(c.name, func(t *testing.T) {
			c.run(newEnv(t, newHarness))
		})
	}
}

// appClock is a settable application clock for limiters under test.
type appClock struct {
	mu     sync.Mutex
	now    time.Time
	offset time.Duration // added to the machine's clock when now is zero
}

func (c *appClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		return time.Now().Add(c.offset)
	}
	return c.now
}

func (c *appClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// rlTime drives the store's clock and an application clock together on a
// harness with a Clock: scripts see now, keys expire as if now had come.
type rlTime struct {
	c   Clock
	app *appClock
	now time.Time
}

// fakeTime returns an rlTime starting at farTime (with microseconds), or
// false on a harness without a Clock.
func (e *env) fakeTime() (*rlTime, bool) {
	c, ok := e.clock()
	if !ok {
		return nil, false
	}
	c.SetNow(farTime)
	app := &appClock{}
	app.set(farTime)
	return &rlTime{c: c, app: app, now: farTime}, true
}

// advance moves both clocks by d. Advance first, then SetNow: on the memory
// driver they move one clock (SetNow lands on the same instant); on
// miniredis Advance moves TTLs and SetNow moves TIME.
func (r *rlTime) advance(d time.Duration) {
	r.now = r.now.Add(d)
	r.c.Advance(d)
	r.c.SetNow(r.now)
	r.app.set(r.now)
}

func (e *env) limiter(s store.Store, opts *ratelimit.Options) *ratelimit.Limiter {
	o := ratelimit.Options{}
	if opts != nil {
		o = *opts
	}
	o.Namespace = e.ns
	if o.Timeout == 0 {
		// Generous: the machine is shared; fail modes have their own case.
		o.Timeout = 30 * time.Second
	}
	return ratelimit.New(s, &o)
}

func (e *env) allow(l *ratelimit.Limiter, p ratelimit.Policy, key string, cost int64) ratelimit.Decision {
	e.t.Helper()
	d, err := l.Allow(e.ctx, p, key, cost)
	require.NoError(e.t, err)
	require.NoError(e.t, d.Degraded, "the store failed")
	return d
}

func (e *env) peek(l *ratelimit.Limiter, p ratelimit.Policy, key string, cost int64) ratelimit.Decision {
	e.t.Helper()
	d, err := l.Peek(e.ctx, p, key, cost)
	require.NoError(e.t, err)
	require.NoError(e.t, d.Degraded, "the store failed")
	return d
}

// hammer sends total requests of cost 1 on key from goroutines goroutines
// through the limiters (round robin) and returns how many were allowed and
// how many failed.
func hammer(ctx context.Context, ls []*ratelimit.Limiter, p ratelimit.Policy, key string, goroutines, total int) (allowed, failed int64, firstErr error) {
	var a, f atomic.Int64
	var errOnce sync.Once
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			l := ls[g%len(ls)]
			for next.Add(1) <= int64(total) {
				d, err := l.Allow(ctx, p, key, 1)
				if err == nil && d.Degraded != nil {
					err = d.Degraded
				}
				if err != nil {
					f.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				if d.Allowed {
					a.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return a.Load(), f.Load(), firstErr
}

// limiters returns n limiters, each over a store instance of its own when
// the harness makes separate instances (Redis), as n application servers
// would have.
func (e *env) limiters(n int, opts *ratelimit.Options) []*ratelimit.Limiter {
	ls := make([]*ratelimit.Limiter, n)
	for i := range ls {
		s := e.s
		if i > 0 {
			s = e.newStore()
		}
		ls[i] = e.limiter(s, opts)
	}
	return ls
}

func testRLExactness(e *env) {
	// A day's window: nothing refills while the case runs, so exactly the
	// limit is admitted.
	p := ratelimit.Policy{Name: "exact", Limit: 100, Window: 24 * time.Hour}
	for _, blocked := range []int{-1, 0} {
		name := map[int]string{-1: "no-blocked-memory", 0: "blocked-memory"}[blocked]
		e.t.Run(name, func(t *testing.T) {
			ls := e.limiters(4, &ratelimit.Options{BlockedKeys: blocked})
			key := "user:exact-" + name
			allowed, failed, err := hammer(e.ctx, ls, p, key, 64, 1024)
			assert.Zero(t, failed, "requests that failed (first: %v)", err)
			assert.Equal(t, int64(100), allowed, "1,024 concurrent requests, limit 100: exactly 100 admitted")
		})
	}
}

func testRLExactnessSliding(e *env) {
	p := ratelimit.Policy{Name: "exact-sliding", Limit: 100, Window: 24 * time.Hour, Algorithm: ratelimit.SlidingWindow}
	if tm, ok := e.fakeTime(); ok {
		// Mid-window, so the fixed window cannot roll over during the case.
		tm.advance(time.Hour)
	} else if now := time.Now().UTC(); now.Add(time.Minute).Day() != now.Day() {
		e.t.Skip("within a minute of the UTC day boundary: the 24 h fixed window could roll over mid-case")
	}
	ls := e.limiters(4, &ratelimit.Options{BlockedKeys: -1})
	allowed, failed, err := hammer(e.ctx, ls, p, "user:exact-sliding", 64, 1024)
	assert.Zero(e.t, failed, "requests that failed (first: %v)", err)
	assert.Equal(e.t, int64(100), allowed, "1,024 concurrent requests, limit 100: exactly 100 admitted")
}

func testRLExactnessProcesses(e *env) {
	key := "user:exact-procs"
	const procs, goroutines, each = 4, 64, 4
	results := RunWorkers(e.t, e.h, procs, "ratelimit-allow", e.ns.String(), key, "100", "86400000", strconv.Itoa(goroutines), strconv.Itoa(each))
	var allowed int64
	for i, r := range results {
		var a, f int64
		_, err := fmt.Sscanf(r, "allowed=%d failed=%d", &a, &f)
		require.NoError(e.t, err, "worker %d result %q", i, r)
		assert.Zero(e.t, f, "worker %d: failed requests", i)
		allowed += a
	}
	assert.Equal(e.t, int64(100), allowed, "%d processes × %d goroutines × %d requests, limit 100: exactly 100 admitted", procs, goroutines, each)
}

// admission is one admitted request's time: exact on a fake clock, or the
// interval [before, after] of the call on a real one.
type admission struct{ before, after time.Time }

// checkGCRABound asserts GCRA's documented bound: between any two admitted
// requests i <= j, at most burst + floor(d/T) requests were admitted, where
// d is the longest the store time between them can have been.
// checkGCRABound checks that no span of admissions holds more than burst
// plus what refills over the span. resolution is the clock's: a policy of
// whole milliseconds is decided on the server's millisecond clock (its
// state is a key's expiry), whose ticks may fall up to a millisecond from
// the real times bracketing the calls.
func checkGCRABound(t *testing.T, adm []admission, burst int64, interval, resolution time.Duration) {
	t.Helper()
	for i := range adm {
		for j := i; j < len(adm); j++ {
			d := adm[j].after.Sub(adm[i].before) + resolution
			bound := burst + int64(d/interval)
			if n := int64(j - i + 1); n > bound {
				t.Fatalf("%d requests admitted within %v: more than burst %d + %v/%v = %d", n, d, burst, d, interval, bound)
			}
		}
	}
}

func testRLWindowBoundary(e *env) {
	t := e.t
	if tm, ok := e.fakeTime(); ok {
		t.Run("gcra", func(t *testing.T) {
			p := ratelimit.Policy{Name: "boundary", Limit: 10, Window: time.Second}
			l := e.limiter(e.s, &ratelimit.Options{Clock: tm.app.Now})
			interval := 100 * time.Millisecond
			for i := range 10 {
				require.True(t, e.allow(l, p, "k", 1).Allowed, "request %d of a full bucket", i)
			}
			d := e.allow(l, p, "k", 1)
			require.False(t, d.Allowed, "the 11th at once")
			assert.Equal(t, interval, d.RetryAfter, "retry after one emission interval")
			tm.advance(interval - time.Microsecond)
			require.False(t, e.allow(l, p, "k", 1).Allowed, "a microsecond early")
			tm.advance(time.Microsecond)
			require.True(t, e.allow(l, p, "k", 1).Allowed, "exactly one interval later")
			require.False(t, e.allow(l, p, "k", 1).Allowed, "only one")
			// A long irregular run: the bound holds for every pair.
			var adm []admission
			for i := range 400 {
				tm.advance(time.Duration(1+(i*7919)%37) * time.Millisecond)
				for range 1 + i%3 {
					if e.allow(l, p, "run", 1).Allowed {
						adm = append(adm, admission{tm.now, tm.now})
					}
				}
			}
			checkGCRABound(t, adm, 10, interval, 0)
			assert.Greater(t, len(adm), 50, "the run admitted what refilled")
		})
		t.Run("sliding", func(t *testing.T) {
			w := time.Second
			p := ratelimit.Policy{Name: "boundary-sw", Limit: 10, Window: w, Algorithm: ratelimit.SlidingWindow}
			l := e.limiter(e.s, &ratelimit.Options{Clock: tm.app.Now})
			// Go to 1 ms before a fixed-window boundary.
			idx := tm.now.UnixMicro() / w.Microseconds()
			tm.advance(time.Duration((idx+1)*w.Microseconds()-tm.now.UnixMicro())*time.Microsecond - time.Millisecond)
			for i := range 10 {
				require.True(t, e.allow(l, p, "k", 1).Allowed, "request %d", i)
			}
			tm.advance(2 * time.Millisecond) // into the next fixed window
			d := e.allow(l, p, "k", 1)
			require.False(t, d.Allowed, "a fixed-window limiter would admit 10 more here; the sliding window does not")
			require.Greater(t, d.RetryAfter, time.Duration(0))
			tm.advance(d.RetryAfter - time.Microsecond)
			require.False(t, e.allow(l, p, "k", 1).Allowed, "a microsecond before the retry time")
			tm.advance(time.Microsecond)
			require.True(t, e.allow(l, p, "k", 1).Allowed, "at the retry time")
			// Bound: any trailing window of length W admits at most 2L-1
			// (documented), and every aligned fixed window at most L.
			var times []time.Time
			for i := range 600 {
				tm.advance(time.Duration(1+(i*104729)%23) * time.Millisecond)
				for range 1 + i%4 {
					if e.allow(l, p, "run", 1).Allowed {
						times = append(times, tm.now)
					}
				}
			}
			perFixed := map[int64]int{}
			for i, at := range times {
				perFixed[at.UnixMicro()/w.Microseconds()]++
				n := 0
				for j := i; j < len(times) && times[j].Sub(at) < w; j++ {
					n++
				}
				require.LessOrEqual(t, n, 19, "admitted within a trailing window from %v", at)
			}
			for idx, n := range perFixed {
				require.LessOrEqual(t, n, 10, "fixed window %d", idx)
			}
		})
		return
	}
	// A real clock: bracket each call by the machine's clock (the server's
	// TIME on the same machine is within the bracket) and check GCRA's
	// bound with the widest interval each pair can span.
	p := ratelimit.Policy{Name: "boundary", Limit: 5, Window: 500 * time.Millisecond}
	l := e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1})
	var adm []admission
	end := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) {
		before := time.Now()
		d := e.allow(l, p, "run", 1)
		if d.Allowed {
			adm = append(adm, admission{before, time.Now()})
		}
	}
	checkGCRABound(t, adm, 5, 100*time.Millisecond, time.Millisecond)
	assert.GreaterOrEqual(t, len(adm), 10, "over 1.5 s at 5 per 500 ms, the refills were admitted")
}

func testRLDenyWithoutCharge(e *env) {
	t := e.t
	for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
		t.Run(alg.String(), func(t *testing.T) {
			p := ratelimit.Policy{Name: "deny-" + alg.String(), Limit: 3, Window: time.Hour, Algorithm: alg}
			l := e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1})
			for range 3 {
				require.True(t, e.allow(l, p, "k", 1).Allowed)
			}
			k, err := e.ns.TaggedKey("k", p.Name)
			require.NoError(t, err)
			before, err := e.s.Get(e.ctx, k)
			require.NoError(t, err)
			first := e.allow(l, p, "k", 1)
			require.False(t, first.Allowed)
			for range 50 {
				d := e.allow(l, p, "k", 1)
				require.False(t, d.Allowed)
				assert.Zero(t, d.Remaining)
				assert.LessOrEqual(t, d.RetryAfter, first.RetryAfter, "denials do not push the retry time back")
			}
			after, err := e.s.Get(e.ctx, k)
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after), "50 denied requests wrote nothing")
		})
	}
	if tm, ok := e.fakeTime(); ok {
		t.Run("refill-after-denials", func(t *testing.T) {
			p := ratelimit.Policy{Name: "deny-refill", Limit: 4, Window: 4 * time.Second}
			l := e.limiter(e.s, &ratelimit.Options{Clock: tm.app.Now, BlockedKeys: -1})
			for range 4 {
				require.True(t, e.allow(l, p, "k", 1).Allowed)
			}
			for range 100 {
				require.False(t, e.allow(l, p, "k", 1).Allowed)
			}
			tm.advance(time.Second)
			assert.True(t, e.allow(l, p, "k", 1).Allowed, "one interval after the burst, one request: the denials charged nothing")
			assert.False(t, e.allow(l, p, "k", 1).Allowed)
		})
	}
}

func testRLCostAboveBurst(e *env) {
	t := e.t
	for _, p := range []ratelimit.Policy{
		{Name: "cost-gcra", Limit: 100, Window: time.Minute, Burst: 10},
		{Name: "cost-sw", Limit: 10, Window: time.Minute, Algorithm: ratelimit.SlidingWindow},
	} {
		l := e.limiter(e.s, nil)
		d := e.allow(l, p, "k", 11)
		assert.False(t, d.Allowed, p.Name)
		assert.True(t, d.Never, "%s: a cost above the burst can never succeed", p.Name)
		assert.Zero(t, d.RetryAfter, "%s: no retry time for what can never succeed", p.Name)
		assert.Equal(t, int64(10), d.Remaining, "%s: nothing charged", p.Name)
		k, err := e.ns.TaggedKey("k", p.Name)
		require.NoError(t, err)
		_, err = e.s.Get(e.ctx, k)
		assert.ErrorIs(t, err, store.ErrNotFound, "%s: nothing written", p.Name)
		d = e.allow(l, p, "k", 10)
		assert.True(t, d.Allowed, "%s: the whole burst at once", p.Name)
		d = e.allow(l, p, "k", 11)
		assert.True(t, d.Never, "%s: still never, not a retry time", p.Name)
	}
}

func testRLPeekIdempotent(e *env) {
	t := e.t
	for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
		p := ratelimit.Policy{Name: "peek-" + alg.String(), Limit: 5, Window: time.Hour, Algorithm: alg}
		l := e.limiter(e.s, nil)
		for range 3 {
			d := e.peek(l, p, "peeked", 1)
			assert.True(t, d.Allowed)
			assert.Equal(t, int64(5), d.Remaining, "%s: peeks consume nothing", alg)
		}
		k, err := e.ns.TaggedKey("peeked", p.Name)
		require.NoError(t, err)
		_, err = e.s.Get(e.ctx, k)
		assert.ErrorIs(t, err, store.ErrNotFound, "%s: peeks write nothing", alg)
		a := e.allow(l, p, "peeked", 1)
		b := e.allow(l, p, "fresh", 1)
		assert.Equal(t, b.Allowed, a.Allowed, alg.String())
		assert.Equal(t, b.Remaining, a.Remaining, "%s: three peeks then a take equal one take", alg)
		assert.InDelta(t, b.ResetAfter, a.ResetAfter, float64(time.Second), alg.String())
		d := e.peek(l, p, "peeked", 1)
		assert.Equal(t, int64(4), d.Remaining, "%s: a peek after a take sees it", alg)
		// A peek on an exhausted key says when.
		for range 4 {
			require.True(t, e.allow(l, p, "peeked", 1).Allowed)
		}
		d = e.peek(l, p, "peeked", 1)
		assert.False(t, d.Allowed, alg.String())
		assert.Greater(t, d.RetryAfter, time.Duration(0), alg.String())
	}
}

func testRLWindowsAllLimit(e *env) {
	t := e.t
	for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
		for _, w := range []time.Duration{100 * time.Millisecond, time.Second, time.Minute, 15 * time.Minute, time.Hour, 24 * time.Hour} {
			p := ratelimit.Policy{Name: "w-" + alg.String() + "-" + strconv.FormatInt(w.Milliseconds(), 10), Limit: 5, Window: w, Algorithm: alg}
			l := e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1})
			if tm, ok := e.fakeTime(); ok {
				l = e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1, Clock: tm.app.Now})
			}
			// On a real clock a 100 ms window refills while we ask: count
			// the admissions within a time that refills less than one.
			start := time.Now()
			admitted := 0
			var last ratelimit.Decision
			for range 20 {
				last = e.allow(l, p, "k", 1)
				if last.Allowed {
					admitted++
				}
			}
			elapsed := time.Since(start)
			refills := int(elapsed * 5 / w)
			if _, ok := e.clock(); ok {
				refills = 0
			}
			assert.GreaterOrEqual(t, admitted, 5, "%v %s: the limit is admitted", w, alg)
			if refills > 0 {
				// A real clock and a short window: what refilled while we
				// asked may be admitted too, and no more.
				assert.LessOrEqual(t, admitted, 5+refills+1, "%v %s: 20 requests, limit 5, %v elapsed", w, alg, elapsed)
			}
			if refills == 0 {
				assert.Equal(t, 5, admitted, "%v %s", w, alg)
				assert.False(t, last.Allowed, "%v %s", w, alg)
				assert.Greater(t, last.RetryAfter, time.Duration(0), "%v %s", w, alg)
				// GCRA: within a window; sliding: the count may weigh into
				// the next window, so within two.
				assert.LessOrEqual(t, last.RetryAfter, w*time.Duration(1+int(alg)), "%v %s: retry time", w, alg)
			}
		}
	}
}

// keyTTLBound is the longest TTL a key of p may carry: GCRA, the time to
// refill the burst (burst × interval, which is the window when the burst is
// the limit); the sliding window, two windows (the current window's count
// still weighs in the next one). Plus a millisecond of rounding.
func keyTTLBound(p ratelimit.Policy) time.Duration {
	if p.Algorithm == ratelimit.SlidingWindow {
		return 2*p.Window + time.Millisecond
	}
	burst := p.Burst
	if burst == 0 {
		burst = p.Limit
	}
	interval := (p.Window.Microseconds() + p.Limit - 1) / p.Limit
	return time.Duration(burst*interval)*time.Microsecond + time.Millisecond
}

func testRLKeyTTLs(e *env) {
	t := e.t
	policies := []ratelimit.Policy{
		{Name: "ttl-a", Limit: 5, Window: 100 * time.Millisecond},
		{Name: "ttl-b", Limit: 100, Window: 15 * time.Minute, Burst: 20},
		{Name: "ttl-c", Limit: 7, Window: 24 * time.Hour},
		{Name: "ttl-d", Limit: 3, Window: time.Hour, Algorithm: ratelimit.SlidingWindow},
		{Name: "ttl-e", Limit: 10, Window: 24 * time.Hour, Algorithm: ratelimit.SlidingWindow},
		ratelimit.API, ratelimit.Login, ratelimit.PasswordReset, ratelimit.InvoiceCreation, ratelimit.Upload,
	}
	byName := map[string]ratelimit.Policy{}
	l := e.limiter(e.s, nil)
	for _, p := range policies {
		byName[p.Name] = p
		for i := range 30 {
			_ = e.allow(l, p, "subject-"+strconv.Itoa(i%3), int64(1+i%2))
		}
	}
	// Across subjects with a refund on the way.
	_, _, err := l.AllowAll(e.ctx, []ratelimit.Request{{Policy: policies[1], Key: "x"}, {Policy: policies[2], Key: "subject-0"}})
	require.NoError(t, err)
	sc, ok := store.Capability[store.Scanner](e.s)
	if !ok {
		t.Skip("the store has no Scanner: cannot list the keys the layer wrote")
	}
	var keys []string
	require.NoError(t, sc.Scan(e.ctx, e.ns.Prefix(), func(b []string) error { keys = append(keys, b...); return nil }))
	require.NotEmpty(t, keys)
	for _, k := range keys {
		_, _, parts, err := store.SplitKey(strings.TrimPrefix(k, e.ns.Prefix()))
		require.NoError(t, err, k)
		p, ok := byName[parts[len(parts)-1]]
		require.True(t, ok, "key %q of no known policy", k)
		ttl, err := e.s.TTL(e.ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue // expired meanwhile (100 ms windows on a real clock)
		}
		require.NoError(t, err)
		assert.Greater(t, ttl, time.Duration(0), "key %q carries a TTL", k)
		assert.LessOrEqual(t, ttl, keyTTLBound(p), "key %q of %s (%d per %v)", k, p.Name, p.Limit, p.Window)
	}
}

func testRLAppClockShift(e *env) {
	t := e.t
	// Three application servers whose clocks disagree by ±2 s share one
	// store: the decisions are the store's, so they agree.
	p := ratelimit.Policy{Name: "shift", Limit: 10, Window: 24 * time.Hour}
	var ls []*ratelimit.Limiter
	for i, off := range []time.Duration{2 * time.Second, -2 * time.Second, 0} {
		s := e.s
		if i > 0 {
			s = e.newStore()
		}
		c := &appClock{offset: off}
		ls = append(ls, e.limiter(s, &ratelimit.Options{Clock: c.Now}))
	}
	admitted := 0
	var retries []time.Duration
	for i := range 30 {
		d := e.allow(ls[i%3], p, "k", 1)
		if d.Allowed {
			admitted++
			continue
		}
		retries = append(retries, d.RetryAfter)
	}
	assert.Equal(t, 10, admitted, "exactly the limit, whatever each server's clock says")
	for _, r := range retries {
		assert.InDelta(t, float64(retries[0]), float64(r), float64(5*time.Second), "retry times agree: none is off by the 2 s skew (%v vs %v)", retries[0], r)
	}
	// The blocked-until memory measures durations: a server 2 s behind
	// still lets the next request through once the store would.
	q := ratelimit.Policy{Name: "shift-short", Limit: 1, Window: 300 * time.Millisecond}
	if tm, ok := e.fakeTime(); ok {
		behind := &appClock{}
		behind.set(tm.now.Add(-2 * time.Second))
		l := e.limiter(e.s, &ratelimit.Options{Clock: behind.Now})
		require.True(t, e.allow(l, q, "b", 1).Allowed)
		d := e.allow(l, q, "b", 1)
		require.False(t, d.Allowed)
		tm.advance(d.RetryAfter)
		behind.set(tm.now.Add(-2 * time.Second))
		assert.True(t, e.allow(l, q, "b", 1).Allowed, "once the store admits, a skewed server's memory does too")
		return
	}
	l := ls[1] // 2 s behind
	require.True(t, e.allow(l, q, "b", 1).Allowed)
	d := e.allow(l, q, "b", 1)
	require.False(t, d.Allowed)
	deadline := time.Now().Add(10 * time.Second)
	for !e.allow(l, q, "b", 1).Allowed {
		require.True(t, time.Now().Before(deadline), "a server 2 s behind still denied 10 s after a 300 ms retry time")
		time.Sleep(10 * time.Millisecond) // polling a real server up to a deadline
	}
}

func testRLMultiSameSubject(e *env) {
	t := e.t
	a := ratelimit.Policy{Name: "multi-a", Limit: 3, Window: time.Hour}
	b := ratelimit.Policy{Name: "multi-b", Limit: 5, Window: time.Hour, Algorithm: ratelimit.SlidingWindow}
	l := e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1})
	reqs := []ratelimit.Request{{Policy: b, Key: "user:1"}, {Policy: a, Key: "user:1"}}
	for i := range 3 {
		o, ds, err := l.AllowAll(e.ctx, reqs)
		require.NoError(t, err)
		require.True(t, o.Allowed, "set %d", i)
		require.Len(t, ds, 2)
	}
	o, ds, err := l.AllowAll(e.ctx, reqs)
	require.NoError(t, err)
	assert.False(t, o.Allowed)
	assert.Equal(t, "multi-a", o.Policy, "the overall decision names the policy that denied")
	assert.False(t, ds[0].Allowed, "the set is denied as a whole")
	assert.Equal(t, int64(2), e.peek(l, b, "user:1", 1).Remaining, "a denial by multi-a charged multi-b nothing")
	// Concurrently, from several instances: exactly 3 sets, multi-b charged 3.
	reqs2 := []ratelimit.Request{{Policy: a, Key: "user:2"}, {Policy: b, Key: "user:2"}}
	ls := e.limiters(4, &ratelimit.Options{BlockedKeys: -1})
	assert.Equal(t, int64(3), allowSets(e, ls, reqs2), "256 concurrent sets, the tighter limit 3")
	assert.Equal(t, int64(2), e.peek(l, b, "user:2", 1).Remaining, "multi-b charged only for the 3 admitted sets")
}

// allowSets decides reqs 256 times from 64 goroutines spread over the
// limiters, fails the case on any error or degraded decision, and returns how
// many sets were admitted.
func allowSets(e *env, ls []*ratelimit.Limiter, reqs []ratelimit.Request) int64 {
	e.t.Helper()
	var admitted, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for range 4 {
				o, _, err := ls[g%4].AllowAll(e.ctx, reqs)
				if err != nil || o.Degraded != nil {
					failed.Add(1)
				} else if o.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(e.t, failed.Load(), "errors or degraded decisions")
	return admitted.Load()
}

func testRLMultiAcrossSubjects(e *env) {
	t := e.t
	ipP := ratelimit.Policy{Name: "ip", Limit: 5, Window: time.Hour}
	userP := ratelimit.Policy{Name: "user", Limit: 2, Window: time.Hour}
	l := e.limiter(e.s, &ratelimit.Options{BlockedKeys: -1})
	ipKey, userKey := "ip4:192.0.2.1", "user:7"
	k1, _ := e.ns.TaggedKey(ipKey, "ip")
	k2, _ := e.ns.TaggedKey(userKey, "user")
	t.Logf("slots %d and %d", store.Slot(k1), store.Slot(k2))
	reqs := []ratelimit.Request{{Policy: ipP, Key: ipKey}, {Policy: userP, Key: userKey}}
	for range 2 {
		o, _, err := l.AllowAll(e.ctx, reqs)
		require.NoError(t, err)
		require.True(t, o.Allowed)
	}
	// ip is asked (and charged) first, then user denies: ip is refunded.
	o, _, err := l.AllowAll(e.ctx, reqs)
	require.NoError(t, err)
	assert.False(t, o.Allowed)
	assert.Equal(t, "user", o.Policy)
	assert.Equal(t, int64(3), e.peek(l, ipP, ipKey, 1).Remaining, "the reservation on ip was refunded")
	assert.Equal(t, uint64(1), l.Stats().Refunds)
	// Concurrently: exactly 2 more sets on a fresh user, and the ip count
	// ends at what was admitted.
	userP2 := ratelimit.Policy{Name: "user", Limit: 2, Window: time.Hour}
	reqs2 := []ratelimit.Request{{Policy: ipP, Key: "ip4:192.0.2.2"}, {Policy: userP2, Key: "user:8"}}
	ipBig := ratelimit.Policy{Name: "ip", Limit: 1000, Window: 24 * time.Hour}
	reqs2[0].Policy = ipBig
	ls := e.limiters(4, &ratelimit.Options{BlockedKeys: -1})
	assert.Equal(t, int64(2), allowSets(e, ls, reqs2), "256 concurrent sets across two subjects, user limit 2")
	assert.Equal(t, int64(998), e.peek(l, ipBig, "ip4:192.0.2.2", 1).Remaining, "every denied set's ip reservation was refunded")
}

func testRLBlockedUntil(e *env) {
	t := e.t
	p := ratelimit.Policy{Name: "blocked", Limit: 5, Window: 24 * time.Hour}
	ls := e.limiters(4, nil)
	allowed, failed, err := hammer(e.ctx, ls, p, "k", 64, 2000)
	require.Zero(t, failed, "first error: %v", err)
	assert.Equal(t, int64(5), allowed, "the blocked memory never admits more than the limit")
	var calls, hits uint64
	for _, l := range ls {
		calls += l.Stats().StoreCalls
		hits += l.Stats().BlockedHits
	}
	assert.Greater(t, hits, uint64(1000), "most denials were answered without the store (%d store calls)", calls)
	assert.Less(t, calls, uint64(1000), "blocked clients cost few round trips")
	tm, ok := e.fakeTime()
	if !ok {
		return
	}
	q := ratelimit.Policy{Name: "blocked-refill", Limit: 2, Window: 2 * time.Second}
	l := e.limiter(e.s, &ratelimit.Options{Clock: tm.app.Now})
	other := e.limiter(e.s, &ratelimit.Options{Clock: tm.app.Now})
	require.True(t, e.allow(l, q, "k", 1).Allowed)
	require.True(t, e.allow(l, q, "k", 1).Allowed)
	d := e.allow(l, q, "k", 1)
	require.False(t, d.Allowed)
	require.Equal(t, time.Second, d.RetryAfter)
	d = e.allow(l, q, "k", 1)
	require.False(t, d.Allowed)
	assert.True(t, d.Local, "answered by the memory")
	tm.advance(time.Second - time.Microsecond)
	require.False(t, e.allow(l, q, "k", 1).Allowed, "a microsecond before the retry time")
	tm.advance(time.Microsecond)
	require.True(t, e.allow(l, q, "k", 1).Allowed, "the memory lets go exactly when the store admits")
	require.False(t, e.allow(l, q, "k", 1).Allowed, "and only one")
	// Another instance's Reset is not seen by l's memory until its retry
	// time passes: l keeps denying (never admitting more).
	require.NoError(t, other.Reset(e.ctx, q, "k"))
	d = e.allow(l, q, "k", 1)
	assert.False(t, d.Allowed, "another instance's Reset: l's memory still denies")
	assert.True(t, d.Local)
	assert.True(t, e.allow(other, q, "k", 1).Allowed, "the other instance sees its reset")
	// Reset on the same instance clears its memory.
	require.NoError(t, l.Reset(e.ctx, q, "k"))
	assert.True(t, e.allow(l, q, "k", 1).Allowed, "Reset on the same instance clears its memory")
}

func testRLReset(e *env) {
	t := e.t
	for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
		p := ratelimit.Policy{Name: "reset-" + alg.String(), Limit: 2, Window: time.Hour, Algorithm: alg}
		l := e.limiter(e.s, nil)
		e.allow(l, p, "k", 1)
		e.allow(l, p, "k", 1)
		require.False(t, e.allow(l, p, "k", 1).Allowed)
		require.NoError(t, l.Reset(e.ctx, p, "k"))
		d := e.allow(l, p, "k", 1)
		assert.True(t, d.Allowed, alg.String())
		assert.Equal(t, int64(1), d.Remaining, alg.String())
	}
}

func testRLHostileKeys(e *env) {
	t := e.t
	p := ratelimit.Policy{Name: "hostile", Limit: 1, Window: time.Hour}
	l := e.limiter(e.s, nil)
	hostile := []string{"*", "{", "}", "{a}", "a\nb", "\xff\xfe", "user:*", strings.Repeat("t", 10_000), "ip4:1.2.3.4|route:GET /"}
	for _, k := range hostile {
		d := e.allow(l, p, k, 1)
		assert.True(t, d.Allowed, "%.20q: its own bucket", k)
	}
	for _, k := range hostile {
		assert.False(t, e.allow(l, p, k, 1).Allowed, "%.20q: its bucket is used", k)
	}
	_, err := l.Allow(e.ctx, p, strings.Repeat("x", 10<<20), 1)
	assert.ErrorIs(t, err, store.ErrInvalidKey, "a 10 MB subject is refused")
	_, err = l.Allow(e.ctx, p, "", 1)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidKey)
	_, err = l.Allow(e.ctx, p, "k", 0)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidCost)
	_, err = l.Allow(e.ctx, ratelimit.Policy{Name: "bad name", Limit: 1, Window: time.Second}, "k", 1)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidPolicy)
	_, err = l.Allow(e.ctx, ratelimit.Policy{Name: "tiny", Limit: 1, Window: time.Microsecond}, "k", 1)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidPolicy)
}
