package main

import (
	"fmt"
	"io"
)

// Target is one of the speed targets: at 64 goroutines, karat's
// scenario against another scenario of the same group and case.
type Target struct {
	Group    string   `json:"group"`
	Keyspace Keyspace `json:"keyspace"`
	Karat    string   `json:"karat"`
	Versus   string   `json:"versus"` // a scenario name; "" for an absolute target
	Want     float64  `json:"want"`   // the ratio karat ÷ versus must reach (or, with Versus "", the allocations it must stay under)
	Got      float64  `json:"got"`
	Met      bool     `json:"met"`
	Missing  bool     `json:"missing,omitempty"` // a scenario was not measured
	What     string   `json:"what"`
}

// targets lists the targets that this run can check.
func targets() []Target {
	var ts []Target
	// A session validation and a cache read "on a client-side cache hit" are
	// checked on the hot key: over 100,000 keys part of the reads miss the
	// client-side cache (its entries live MaxStale), which the tables show.
	ts = append(ts,
		Target{Group: "session", Keyspace: Hot, Karat: "karat-rueidis-csc", Versus: "scs-goredis", Want: 20, What: "session validation on a CSC hit ≥ 20× scs with go-redis"},
		Target{Group: "session", Keyspace: Hot, Karat: "karat-rueidis-csc", Want: 10, What: "session validation on a CSC hit ≤ 10 allocations"},
		Target{Group: "session", Keyspace: Hot, Karat: "karat-rueidis-csc", Want: 0, What: "session validation on a CSC hit: no store round trip (Redis commands/op)"},
		Target{Group: "cache-hit", Keyspace: Hot, Karat: "karat-rueidis", Versus: "raw-rueidis-docache", Want: 0.8, What: "cache hit ≥ 80% of raw rueidis DoCache"},
	)
	for _, ks := range []Keyspace{Hot, Spread} {
		ts = append(ts,
			Target{Group: "ratelimit", Keyspace: ks, Karat: "karat-gcra-rueidis", Versus: "raw-evalsha", Want: 0.85, What: "rate limit on rueidis ≥ 85% of the raw EVALSHA floor"},
			Target{Group: "ratelimit", Keyspace: ks, Karat: "karat-gcra-rueidis", Versus: "redis_rate", Want: 3, What: "rate limit on rueidis ≥ 3× go-redis/redis_rate"},
			Target{Group: "ratelimit", Keyspace: ks, Karat: "karat-gcra-rueidis", Versus: "ulule-redis", Want: 2, What: "rate limit on rueidis ≥ 2× ulule/limiter"},
			Target{Group: "memlimit", Keyspace: ks, Karat: "karat-memory", Versus: "sethvargo-memory", Want: 1, What: "memory limiter ≥ sethvargo/go-limiter"},
		)
	}
	ts = append(ts, Target{Group: "http", Keyspace: Hot, Karat: "karat-httpapi", Versus: "bare-mux", Want: 0.5, What: "HTTP stack on a cache hit ≥ 50% of the bare handler"})
	return ts
}

// checkTargets fills Got and Met from the results at the largest goroutine
// count.
func checkTargets(rs []*Result) []Target {
	maxG := 0
	for _, r := range rs {
		maxG = max(maxG, r.Goroutines)
	}
	find := func(g string, ks Keyspace, name string) *Result {
		for _, r := range rs {
			if r.Group == g && r.Keyspace == ks && r.Scenario == name && r.Goroutines == maxG && r.SetupError == "" && r.Ops > 0 {
				return r
			}
		}
		return nil
	}
	var out []Target
	for _, t := range targets() {
		k := find(t.Group, t.Keyspace, t.Karat)
		if k == nil {
			continue // the group was not run (--only) or karat's scenario is missing
		}
		switch {
		case t.Versus != "":
			v := find(t.Group, t.Keyspace, t.Versus)
			if v == nil || v.OpsPerSec == 0 {
				t.Missing = true
				break
			}
			t.Got = k.OpsPerSec / v.OpsPerSec
			t.Met = t.Got >= t.Want
		case t.Want == 0:
			// Aggregated over the run, a few background commands (a client's
			// PING, a client-side cache entry refreshed once per MaxStale)
			// are not round trips of the validation: < 1 per 100 operations.
			t.Got = k.CommandsPerOp
			t.Met = k.CommandsPerOp >= 0 && k.CommandsPerOp < 0.01
		default:
			t.Got = k.AllocsPerOp
			t.Met = k.AllocsPerOp <= t.Want
		}
		out = append(out, t)
	}
	return out
}

func printTargets(w io.Writer, ts []Target) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "### The issue's targets (largest goroutine count)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | keyspace | karat | versus | want | got | met |")
	fmt.Fprintln(w, "|---|---|---|---|--:|--:|---|")
	for _, t := range ts {
		want, got := fmt.Sprintf("≥ %.2f×", t.Want), fmt.Sprintf("%.2f×", t.Got)
		switch {
		case t.Group == "memory":
			want, got = fmt.Sprintf("≤ %.0f B", t.Want), fmt.Sprintf("%.0f B", t.Got)
		case t.Versus == "" && t.Want == 0:
			want, got = "< 0.01 cmds/op", fmt.Sprintf("%.4f", t.Got)
		case t.Versus == "":
			want, got = fmt.Sprintf("≤ %.0f allocs", t.Want), fmt.Sprintf("%.1f", t.Got)
		}
		met := "yes"
		switch {
		case t.Missing:
			met, got = "not measured", "—"
		case !t.Met:
			met = "**no**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", t.What, t.Keyspace, t.Karat, t.Versus, want, got, met)
	}
	fmt.Fprintln(w)
}

// checkMemoryTargets checks the memory targets: a karat session at
// rest (record, token pointer and user index entry) ≤ 1 KiB of Redis
// memory, and the memory driver ≤ 200 bytes of overhead per key.
func checkMemoryTargets(x *Extras) []Target {
	if x == nil {
		return nil
	}
	var out []Target
	for _, m := range x.RedisMemory {
		if m.What == "session" && m.Kind == KindKarat && m.Error == "" {
			out = append(out, Target{Group: "memory", Karat: m.Scenario, Want: 1024, Got: m.PerEntry, Met: m.PerEntry <= 1024,
				What: "a session at rest ≤ 1 KiB of Redis memory, index included (bytes)"})
		}
	}
	if x.MemHeap != nil {
		out = append(out, Target{Group: "memory", Karat: "memory driver", Want: 200, Got: x.MemHeap.OverheadBytes, Met: x.MemHeap.OverheadBytes <= 200,
			What: "memory driver overhead per key beyond key and value ≤ 200 bytes"})
	}
	return out
}
