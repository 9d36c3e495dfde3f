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
	at := now.Add(500 * time.Millisecond)
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
		at := now
		if !l.recent(k, &at) {
			t.Fatalf("%s was written and is not recent", k)
		}
	}
	for _, k := range keys[5000:] {
		at := now
		if l.recent(k, &at) {
			t.Fatalf("%s was never written and is recent", k)
		}
	}
	later := now.Add(time.Second)
	for _, k := range keys[:5000] {
		at := later
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
		var at time.Time
		if l.recent(k, &at) || !at.IsZero() {
			t.Fatalf("%s: after the sweep recent read the clock or answered true", k)
		}
	}
}
