package conformance

import (
	"context"
	"strconv"
	"time"

	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

// rlSet returns a Setup that stores, in key i, the value val(now) with the
// given TTL, now being the store's clock.
func rlSet(i int, ttl time.Duration, val func(now int64) string) func(context.Context, store.Store, []string) error {
	return func(ctx context.Context, s store.Store, keys []string) error {
		now, err := storeNow(ctx, s)
		if err != nil {
			return err
		}
		return s.Set(ctx, keys[i], []byte(val(now.UnixMicro())), ttl)
	}
}

func rlWindows(w int64, back int64, cur, prev int) func(now int64) string {
	return func(now int64) string {
		return strconv.FormatInt(now/w-back, 10) + ":" + strconv.Itoa(cur) + ":" + strconv.Itoa(prev)
	}
}

// rlEqualWithin compares decide results when the target's clock cannot be
// set: flags and counts exactly, times (the third and fourth of each
// policy's four values) within 10 s: the reference's clock is read before
// the setup, and a loaded machine (a cluster's first EVAL, say) can take
// more than a second between the two.
func rlEqualWithin(a, b store.Value) bool {
	if a.Kind != store.KindArray || b.Kind != store.KindArray || len(a.Array) != len(b.Array) {
		return false
	}
	for i := range a.Array {
		x, y := a.Array[i].Int, b.Array[i].Int
		if i > 0 && (i-1)%4 >= 2 && x > 0 && y > 0 {
			if d := x - y; d < -10_000_000 || d > 10_000_000 {
				return false
			}
			continue
		}
		if x != y || a.Array[i].Kind != b.Array[i].Kind {
			return false
		}
	}
	return true
}

// rlIntWithin compares the whole-millisecond script's results when the
// target's clock cannot be set: admitted or denied alike (the sign), and
// the used time (ms) within 10 s, as rlEqualWithin.
func rlIntWithin(a, b store.Value) bool {
	if a.Kind != store.KindInt || b.Kind != store.KindInt || (a.Int > 0) != (b.Int > 0) {
		return a.Equal(b)
	}
	d := a.Int - b.Int
	return d >= -10_000 && d <= 10_000
}

func testRLScriptBodiesAgree(e *env) {
	_, exact := e.clock()
	// GCRA: interval 100 ms, burst 10. Sliding: 1 s windows on a settable
	// clock; a day's windows otherwise, so that the few milliseconds
	// between the reference's clock and the server's cannot change a count.
	g := []string{"g", "100000", "1000000"}
	w := int64(1_000_000)
	if !exact {
		w = 86_400_000_000
	}
	sw := []string{"s", strconv.FormatInt(w, 10), "10"}
	args := func(mode string, per ...[]string) []string {
		out := []string{mode}
		for _, p := range per {
			out = append(out, p...)
		}
		return out
	}
	with := func(p []string, cost string) []string { return append(append([]string{}, p...), cost) }
	tat := func(off int64) func(int64) string {
		return func(now int64) string { return strconv.FormatInt(now+off, 10) }
	}
	one := []string{"a"}
	two := []string{"a", "b"}
	cases := []ScriptCase{
		// Cases whose setup and writes do not depend on the clock: on every
		// target.
		{Name: "gcra-never", Keys: one, Args: args("t", with(g, "11"))},
		// A TAT in 2096: denied whatever the clock, nothing written.
		{Name: "gcra-deny-far-tat", Keys: one, Args: args("t", with(g, "1")), Setup: rlSet(0, time.Hour, func(int64) string { return "4000000000000000" })},
		{Name: "gcra-peek-far-tat", Keys: one, Args: args("p", with(g, "1")), Setup: rlSet(0, time.Hour, func(int64) string { return "4000000000000000" })},
		{Name: "wrong-type", Keys: one, Args: args("t", with(g, "1")),
			Setup: func(ctx context.Context, s store.Store, keys []string) error {
				return s.HSet(ctx, keys[0], map[string][]byte{"f": []byte("x")})
			}},
		{Name: "bad-args", Keys: one, Args: []string{"t", "g", "1"}},
		{Name: "sw-fresh", Keys: one, Args: args("t", with(sw, "3"))},
		{Name: "sw-same-window", Keys: one, Args: args("t", with(sw, "1")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 4, 2))},
		{Name: "sw-previous-window", Keys: one, Args: args("t", with(sw, "2")), Setup: rlSet(0, time.Hour, rlWindows(w, 1, 3, 9))},
		{Name: "sw-old-window", Keys: one, Args: args("t", with(sw, "1")), Setup: rlSet(0, time.Hour, rlWindows(w, 5, 9, 9))},
		{Name: "sw-deny-within-window", Keys: one, Args: args("t", with(sw, "1")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 8, 10))},
		{Name: "sw-deny-next-window", Keys: one, Args: args("t", with(sw, "2")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 9, 0))},
		{Name: "sw-never", Keys: one, Args: args("t", with(sw, "11"))},
		{Name: "sw-peek", Keys: one, Args: args("p", with(sw, "1")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 4, 2))},
		{Name: "sw-refund", Keys: one, Args: args("r", with(sw, "2")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 3, 2))},
		{Name: "sw-refund-into-previous", Keys: one, Args: args("r", with(sw, "3")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 1, 5))},
		{Name: "sw-refund-to-nothing", Keys: one, Args: args("r", with(sw, "3")), Setup: rlSet(0, time.Hour, rlWindows(w, 0, 3, 0))},
		{Name: "sw-garbage", Keys: one, Args: args("t", with(sw, "1")), Setup: rlSet(0, time.Hour, func(int64) string { return "1:2" })},
		{Name: "multi-one-denies-nothing-written", Keys: two, Args: args("t", with(g, "1"), with(sw, "2")),
			Setup: rlSet(1, time.Hour, rlWindows(w, 0, 9, 0))},
		{Name: "multi-never", Keys: two, Args: args("t", with(sw, "1"), with(g, "20"))},
	}
	if exact {
		// GCRA writes its TAT, a time: equal only when both clocks are set.
		cases = append(cases,
			ScriptCase{Name: "gcra-fresh", Keys: one, Args: args("t", with(g, "1"))},
			ScriptCase{Name: "gcra-deny", Keys: one, Args: args("t", with(g, "1")), Setup: rlSet(0, time.Second, tat(950_000))},
			ScriptCase{Name: "gcra-peek", Keys: one, Args: args("p", with(g, "2")), Setup: rlSet(0, time.Second, tat(300_000))},
			ScriptCase{Name: "gcra-peek-denied", Keys: one, Args: args("p", with(g, "8")), Setup: rlSet(0, time.Second, tat(300_000))},
			ScriptCase{Name: "gcra-existing", Keys: one, Args: args("t", with(g, "3")), Setup: rlSet(0, time.Second, tat(500_000))},
			ScriptCase{Name: "gcra-stale-tat", Keys: one, Args: args("t", with(g, "1")), Setup: rlSet(0, time.Hour, tat(-5_000_000))},
			ScriptCase{Name: "gcra-garbage", Keys: one, Args: args("t", with(g, "1")), Setup: rlSet(0, time.Hour, func(int64) string { return "12abc" })},
			ScriptCase{Name: "gcra-refund", Keys: one, Args: args("r", with(g, "2")), Setup: rlSet(0, time.Second, tat(300_000))},
			ScriptCase{Name: "gcra-refund-to-nothing", Keys: one, Args: args("r", with(g, "2")), Setup: rlSet(0, time.Second, tat(100_000))},
			ScriptCase{Name: "multi-take", Keys: two, Args: args("t", with(g, "2"), with(sw, "1")), Setup: rlSet(1, time.Hour, rlWindows(w, 0, 2, 3))},
			ScriptCase{Name: "multi-refund", Keys: two, Args: args("r", with(g, "1"), with(sw, "1")),
				Setup: func(ctx context.Context, s store.Store, keys []string) error {
					if err := rlSet(0, time.Second, tat(400_000))(ctx, s, keys); err != nil {
						return err
					}
					return rlSet(1, time.Hour, rlWindows(w, 0, 2, 3))(ctx, s, keys)
				}},
		)
	} else {
		e.t.Log("no settable clock: the GCRA cases that write a time are compared on memory and miniredis only")
		for i := range cases {
			cases[i].Equal = rlEqualWithin
		}
	}
	CheckScript(e.t, e.h, ratelimit.DecideScript(), cases)

	// The hot path (one GCRA policy, charged): ARGV interval, tau, cost.
	ga := func(cost string) []string { return []string{"100000", "1000000", cost} }
	fast := []ScriptCase{
		{Name: "fast-never", Keys: one, Args: ga("11")},
		{Name: "fast-deny-far-tat", Keys: one, Args: ga("1"), Setup: rlSet(0, time.Hour, func(int64) string { return "4000000000000000" })},
		{Name: "fast-never-far-tat", Keys: one, Args: ga("12"), Setup: rlSet(0, time.Hour, func(int64) string { return "4000000000000000" })},
		{Name: "fast-wrong-type", Keys: one, Args: ga("1"),
			Setup: func(ctx context.Context, s store.Store, keys []string) error {
				return s.HSet(ctx, keys[0], map[string][]byte{"f": []byte("x")})
			}},
		{Name: "fast-bad-args", Keys: one, Args: []string{"100000", "x", "1"}},
		{Name: "fast-bad-arg-count", Keys: one, Args: []string{"100000", "1000000"}},
	}
	if exact {
		fast = append(fast,
			ScriptCase{Name: "fast-fresh", Keys: one, Args: ga("1")},
			ScriptCase{Name: "fast-existing", Keys: one, Args: ga("3"), Setup: rlSet(0, time.Second, tat(500_000))},
			ScriptCase{Name: "fast-deny", Keys: one, Args: ga("1"), Setup: rlSet(0, time.Second, tat(950_000))},
			ScriptCase{Name: "fast-exactly-full", Keys: one, Args: ga("1"), Setup: rlSet(0, time.Second, tat(900_000))},
			ScriptCase{Name: "fast-stale-tat", Keys: one, Args: ga("1"), Setup: rlSet(0, time.Hour, tat(-5_000_000))},
			ScriptCase{Name: "fast-garbage", Keys: one, Args: ga("1"), Setup: rlSet(0, time.Hour, func(int64) string { return "12abc" })},
		)
	} else {
		for i := range fast {
			fast[i].Equal = rlEqualWithin
		}
	}
	CheckScript(e.t, e.h, ratelimit.GCRATakeScript(), fast)

	// The hot path of whole-millisecond policies: the TAT is the key's
	// expiry (its PTTL, on the server's clock) and the value is empty.
	// ARGV interval, tau in ms, cost: 100 ms, burst 10. Without a settable
	// clock the PTTL runs down between the setup and each body's run (more
	// than 50 ms was seen on a loaded CI machine, which turned a denial
	// 50 ms from the edge into an admission): there every time is scaled
	// by 1000 (100 s, burst 10), so that no setup is within seconds of an
	// edge.
	k := int64(1)
	if !exact {
		k = 1000
	}
	msd := func(ms int64) time.Duration { return time.Duration(ms*k) * time.Millisecond }
	gm := func(cost string) []string {
		return []string{strconv.FormatInt(100*k, 10), strconv.FormatInt(1000*k, 10), cost}
	}
	empty := func(int64) string { return "" }
	ms := []ScriptCase{
		{Name: "ms-fresh", Keys: one, Args: gm("1")},
		{Name: "ms-never", Keys: one, Args: gm("11")},
		{Name: "ms-huge-cost", Keys: one, Args: gm("9223372036854775807")},
		{Name: "ms-existing", Keys: one, Args: gm("3"), Setup: rlSet(0, msd(500), empty)},
		{Name: "ms-deny", Keys: one, Args: gm("1"), Setup: rlSet(0, msd(950), empty)},
		{Name: "ms-deny-cost", Keys: one, Args: gm("6"), Setup: rlSet(0, msd(600), empty)},
		{Name: "ms-never-when-full", Keys: one, Args: gm("12"), Setup: rlSet(0, msd(950), empty)},
		// A key without expiry counts as an empty bucket, as PTTL's -1.
		{Name: "ms-no-expiry", Keys: one, Args: gm("1"), Setup: rlSet(0, 0, empty)},
		{Name: "ms-wrong-type", Keys: one, Args: gm("1"),
			Setup: func(ctx context.Context, s store.Store, keys []string) error {
				return s.HSet(ctx, keys[0], map[string][]byte{"f": []byte("x")})
			}},
		{Name: "ms-bad-args", Keys: one, Args: []string{"100", "x", "1"}},
		{Name: "ms-bad-interval", Keys: one, Args: []string{"0", "1000", "1"}},
		{Name: "ms-bad-arg-count", Keys: one, Args: []string{"100", "1000"}},
	}
	if exact {
		// A microsecond TAT written by the general script, read by its TTL
		// (the value is a time: equal only when both clocks are set).
		ms = append(ms, ScriptCase{Name: "ms-over-us-state", Keys: one, Args: gm("2"), Setup: rlSet(0, 400*time.Millisecond, tat(400_000))})
	} else {
		// PTTL runs down between the setup and the script on a real
		// server: times within rlEqualWithin's bound, flags exactly (the
		// setups are far from every edge).
		for i := range ms {
			ms[i].Equal = rlIntWithin
		}
	}
	CheckScript(e.t, e.h, ratelimit.GCRATakeMsScript(), ms)
	// The general script reads the empty state: take, peek and refund.
	gs := []string{"g", strconv.FormatInt(100_000*k, 10), strconv.FormatInt(1_000_000*k, 10)}
	msState := []ScriptCase{
		{Name: "decide-ms-state-deny", Keys: one, Args: args("t", with(gs, "1")), Setup: rlSet(0, msd(950), empty)},
		{Name: "decide-ms-state-peek", Keys: one, Args: args("p", with(gs, "2")), Setup: rlSet(0, msd(300), empty)},
	}
	if exact {
		// These write a TAT, a time: equal only when both clocks are set.
		msState = append(msState,
			ScriptCase{Name: "decide-ms-state-take", Keys: one, Args: args("t", with(g, "3")), Setup: rlSet(0, msd(500), empty)},
			ScriptCase{Name: "decide-ms-state-refund", Keys: one, Args: args("r", with(g, "2")), Setup: rlSet(0, msd(300), empty)},
		)
	} else {
		for i := range msState {
			msState[i].Equal = rlEqualWithin
		}
	}
	CheckScript(e.t, e.h, ratelimit.DecideScript(), msState)
}
