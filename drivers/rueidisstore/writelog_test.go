package rueidisstore

import (
	"strconv"
	"testing"
	"time"
)

// TestWriteLogKeepsLaterWrite: two writes of one key race, and the one that
// read the clock later records first. The log must keep the later time, or a
// read right after the later write could be answered from a cache entry
// filled before it once the earlier time leaves the window.
func TestWriteLogKeepsLaterWrite(t *testing.T) {
	l := newWriteLog()
	l.widen(time.Second)
	now := time.Now()
	t1 := l.since(now.Add(-900 * time.Millisecond)) // the write that read the clock first
	t2 := l.since(now)
	l.noteAt([]string{"k"}, t2)
	l.noteAt([]string{"k"}, t1)
	sh, slot := l.slots("k")
	if got := sh.at["k"]; got != t2 {
		t.Errorf("record keeps %d, want the later write %d", got, t2)
	}
	if got := slot.Load(); got != t2 {
		t.Errorf("filter keeps %d, want the later write %d", got, t2)
	}
	// 500ms from now the earlier write is out of the window, the later not.
	at := l.since(now.Add(500 * time.Millisecond))
	if !l.recent("k", &at) {
		t.Error("a key written 500ms ago with a 1s window is not recent")
	}
}

// TestWriteLogFilter: the lock-free filter never hides a write (every
// written key is recent), forgets after the window, and leaves keys never
// written without a clock read.
func TestWriteLogFilter(t *testing.T) {
	l := newWriteLog()
	l.widen(time.Second)
	var keys []string
	for i := range 10000 { // more keys than filter slots: slots are shared
		keys = append(keys, "key-"+strconv.Itoa(i))
	}
	now := time.Now()
	l.noteAt(keys[:5000], l.since(now))
	for _, k := range keys[:5000] {
		at := l.since(now)
		if !l.recent(k, &at) {
			t.Fatalf("%s was written and is not recent", k)
		}
	}
	for _, k := range keys[5000:] {
		at := l.since(now)
		if l.recent(k, &at) {
			t.Fatalf("%s was never written and is recent", k)
		}
	}
	later := now.Add(time.Second)
	for _, k := range keys[:5000] {
		at := l.since(later)
		if l.recent(k, &at) {
			t.Fatalf("%s is recent a window after its write", k)
		}
	}
	// A sweep a window later empties the filter: no clock read for any key.
	l.noteAt([]string{"other"}, l.since(later))
	_, otherSlot := l.slots("other")
	for _, k := range keys {
		if _, slot := l.slots(k); slot == otherSlot {
			continue
		}
		var at int64
		if l.recent(k, &at) || at != 0 {
			t.Fatalf("%s: after the sweep recent read the clock or answered true", k)
		}
	}
}

// TestWriteLogWall: the wall clock read from the monotonic one agrees with
// time.Now, and an offset gone wrong (a step of the wall clock) is read
// again once wallRecheck has passed on the log's clock.
func TestWriteLogWall(t *testing.T) {
	l := newWriteLog()
	const slack = int64(time.Millisecond) // the two clocks drift apart by far less in a test's life
	check := func(what string) {
		t.Helper()
		before := time.Now().UnixNano()
		w := l.wall(l.now())
		after := time.Now().UnixNano()
		if w < before-slack || w > after+slack {
			t.Fatalf("%s: wall %d is outside [%d, %d]", what, w, before, after)
		}
	}
	check("new log")
	// A step of the wall clock by an hour, not yet seen.
	l.offset.Add(int64(time.Hour))
	t0 := l.now()
	l.checked.Store(t0)
	if got := l.wall(t0); got-t0-l.epoch.UnixNano() < int64(59*time.Minute) {
		t.Fatalf("within wallRecheck the offset was read again already (%d)", got)
	}
	// wallRecheck later on the log's clock, the offset is read again.
	if got, want := l.wall(t0+int64(wallRecheck)), time.Now().UnixNano()+int64(wallRecheck)-(l.now()-t0); got > want+int64(time.Second) {
		t.Fatalf("after wallRecheck the hour's step is still in the offset: %d, want about %d", got, want)
	}
	check("after the recheck")
}
