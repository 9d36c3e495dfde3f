package cache

import (
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	fu := time.UnixMicro(1_900_000_000_123_456)
	b := encodeEntry(true, fu, 1500*time.Microsecond, []int64{3, 0, 1 << 40}, []byte("payload"))
	e, ok := decodeEntry(b)
	if !ok {
		t.Fatal("decodeEntry refused its own encoding")
	}
	if !e.negative || e.freshUntil != fu.UnixMicro() || e.delta != 1500 || string(e.value) != "payload" {
		t.Fatalf("decoded %+v", e)
	}
	if len(e.gens) != 3 || e.gens[0] != 3 || e.gens[2] != 1<<40 {
		t.Fatalf("gens %v", e.gens)
	}
	if !e.current([]int64{3, 0, 1 << 40}) || !e.current([]int64{2, 0, 0}) {
		t.Error("an entry is current under its own or older generations")
	}
	if e.current([]int64{4, 0, 1 << 40}) || e.current([]int64{3, 0}) {
		t.Error("an entry is not current under a newer generation, or another tag list")
	}
	for _, bad := range [][]byte{nil, []byte("x"), b[:headerLen+7], append([]byte{9}, b[1:]...)} {
		if _, ok := decodeEntry(bad); ok {
			t.Errorf("decodeEntry accepted %q", bad)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"report:*", "report:1", true},
		{"report:*", "report:", true},
		{"report:*", "x-report:1", false},
		{"*report*", "x-report:1", true},
		{"r?port", "report", true},
		{"r?port", "rport", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
	} {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestEarlyRefresh(t *testing.T) {
	c := &Cache[string]{p: Policy{EarlyRefresh: 1}}
	now := time.UnixMicro(1_000_000_000)
	// Far from expiry relative to delta: (almost) never.
	n := 0
	for range 1000 {
		if c.earlyRefresh(now.Add(time.Hour).UnixMicro(), 1000, now) {
			n++
		}
	}
	if n != 0 {
		t.Errorf("refreshed %d times an hour before expiry with a 1 ms load", n)
	}
	// At expiry: always; a second away with a 1 s load: often, not always.
	if !c.earlyRefresh(now.UnixMicro(), 1, now) {
		t.Error("no refresh at expiry")
	}
	n = 0
	for range 1000 {
		if c.earlyRefresh(now.Add(time.Second).UnixMicro(), time.Second.Microseconds(), now) {
			n++
		}
	}
	if n < 200 || n > 600 { // P = e^-1 ≈ 0.37
		t.Errorf("refreshed %d/1000 times one load-time before expiry, want about 370", n)
	}
	c.p.EarlyRefresh = 0
	if c.earlyRefresh(now.UnixMicro(), 1, now) {
		t.Error("EarlyRefresh 0 never refreshes early")
	}
}

func TestLocalEviction(t *testing.T) {
	l := newLocal[int](3, time.Minute)
	for i := range 10 {
		l.install("t", string(rune('a'+i)), &localEntry[int]{val: i}, l.begin())
	}
	n := 0
	for _, m := range l.m {
		n += len(m)
	}
	if n != 3 || l.n != 3 {
		t.Errorf("%d entries (counted %d), cap 3", n, l.n)
	}
	seq := l.begin()
	l.dropKey("t", "zz")
	l.install("t", "late", &localEntry[int]{}, seq)
	if l.get("t", "late") != nil {
		t.Error("a read that began before a write installed its value")
	}
}
