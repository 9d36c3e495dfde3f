package session

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

var testSecret = [][]byte{[]byte("a unit-test secret, at least 32 bytes long")}

// The keys built by hand on the hot path are the keys the store's encoder
// would build, in the slot the script's other keys are in.
func TestKeyLayout(t *testing.T) {
	ns := store.MustNamespace("app", "sess:x")
	m, err := New(memstore.New(nil), testSecret, &Options{Namespace: ns, Shards: 5})
	if err != nil {
		t.Fatal(err)
	}
	var h [64]byte
	copy(h[:], strings.Repeat("0f", 32))
	want, err := ns.TaggedKey(string(h[:]), "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ptrKey(&h); got != want {
		t.Errorf("ptrKey = %q, want %q", got, want)
	}
	if got := m.ptrKeyOf(string(h[:])); got != want {
		t.Errorf("ptrKeyOf = %q, want %q", got, want)
	}
	for _, user := range []string{"ann", "{x}", "a\nb", "\xff"} {
		sh := m.shardOf(user)
		id := strings.Repeat("ab", 16)
		rec, err := ns.TaggedKey(sh.tag, "r", id)
		if err != nil {
			t.Fatal(err)
		}
		if got := sh.rec + id; got != rec {
			t.Errorf("record key %q, want %q", got, rec)
		}
		idx, err := m.userKeys(sh, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{idx, sh.live, sh.counters} {
			if store.Slot(k) != store.Slot(rec) {
				t.Errorf("%q is not in the slot of %q", k, rec)
			}
		}
	}
}

func TestParseToken(t *testing.T) {
	var raw [32]byte
	good := strings.Repeat("0123456789abcdef", 4)
	if !parseToken(good, &raw) || raw[0] != 0x01 || raw[31] != 0xef {
		t.Fatalf("parseToken(%q) = %x", good, raw)
	}
	for _, bad := range []string{"", good[:63], good + "0", strings.ToUpper(good), good[:63] + "g", good[:63] + " ", good[:62] + "\x00\x00"} {
		if parseToken(bad, &raw) {
			t.Errorf("parseToken(%q) accepted", bad)
		}
	}
	tok, raw2, err := newToken()
	if err != nil || !parseToken(tok, &raw) || raw != raw2 {
		t.Fatalf("newToken gave %q (%v), which does not parse back", tok, err)
	}
}

func TestOptions(t *testing.T) {
	s := memstore.New(nil)
	for _, o := range []*Options{{IdleTimeout: -1}, {AbsoluteTimeout: -time.Second}, {TouchInterval: -1}, {RotationGrace: -1}} {
		if _, err := New(s, testSecret, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	if _, err := New(nil, testSecret, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil store: %v", err)
	}
	m, err := New(s, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.idle != 30*60*1000 || m.abs != 8*3600*1000 || m.touch != 60*1000 || m.grace != 0 || m.maxStale != time.Second || len(m.shards) != 64 {
		t.Errorf("defaults: idle %d abs %d touch %d grace %d maxStale %v shards %d", m.idle, m.abs, m.touch, m.grace, m.maxStale, len(m.shards))
	}
	if m.ns.String() != "karat:session" {
		t.Errorf("default namespace %q", m.ns)
	}
}

// A validation on the memory driver: count the allocations (the figure on
// rueidis is in BENCHMARKS.md).
func TestValidateAllocations(t *testing.T) {
	ctx := context.Background()
	m, err := New(memstore.New(nil), testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := m.Create(ctx, "ann", "shop", Meta{Device: "laptop", Data: map[string]string{"role": "owner"}})
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		if _, err := m.Validate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per validation on the memory driver", n)
	if n > 20 {
		t.Errorf("%v allocations per validation", n)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = m.Validate(ctx, "short") }); n != 0 {
		t.Errorf("a malformed token allocates %v times", n)
	}
}

// Another instance's pointer cache cannot bring back a token rotated away
// or revoked here: the record decides, and the stale entry is dropped.
func TestPointerCacheNeverDecides(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	a, err := New(s, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(s, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Create(ctx, "ann", "shop", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Validate(ctx, tok); err != nil { // b caches the pointer
		t.Fatal(err)
	}
	fresh, _, err := a.Rotate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Validate(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rotated-away token through a cached pointer: %v", err)
	}
	var raw [32]byte
	parseToken(tok, &raw)
	var h [64]byte
	b.hashers[0].sum(&raw, &h)
	if _, ok := b.ptrs.get(&h); ok {
		t.Error("the rejected pointer is still cached")
	}
	if _, err := b.Validate(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Validate(ctx, fresh); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token through a cached pointer: %v", err)
	}
}

func TestPointerCacheBounded(t *testing.T) {
	c := newPtrCache(ptrShards * 2)
	var h [64]byte
	for i := range 1000 {
		h[0], h[1] = byte(i), byte(i>>8)
		c.put(&h, sessionrecPointer(i))
		if n := c.len(); n > ptrShards*2 {
			t.Fatalf("%d entries in a cache of %d", n, ptrShards*2)
		}
	}
	if got, ok := c.get(&h); !ok || got != sessionrecPointer(999) {
		t.Errorf("the last entry put is not there: %+v %v", got, ok)
	}
	var none *ptrCache // PointerCache < 0
	none.put(&h, sessionrecPointer(1))
	if _, ok := none.get(&h); ok {
		t.Error("a disabled cache returned an entry")
	}
}
