package session_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

// This fuzz target was written for issue 12 (reliability); RELIABILITY.md
// lists what it asserts. Its corpus is under testdata/fuzz.

var fuzzSecret = bytes.Repeat([]byte("f"), 32)

// wellFormed is what session tokens look like: 64 lowercase hex.
var wellFormed = regexp.MustCompile(`^[0-9a-f]{64}$`)

// countingStore counts the calls that reach the store.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	calls int
}

func (c *countingStore) count() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.count()
	return c.Store.Get(ctx, key)
}

func (c *countingStore) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	c.count()
	return c.Store.MGet(ctx, keys...)
}

func (c *countingStore) HGet(ctx context.Context, key, field string) ([]byte, error) {
	c.count()
	return c.Store.HGet(ctx, key, field)
}

func (c *countingStore) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	c.count()
	return c.Store.Eval(ctx, sc, keys, args...)
}

func (c *countingStore) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	c.count()
	return c.Store.HGetAll(ctx, key)
}

// FuzzSessionToken: any string given to Validate or Revoke is ErrNotFound,
// and one that is not 64 lowercase hex characters makes no store call.
func FuzzSessionToken(f *testing.F) {
	for _, seed := range []string{"", "x", strings.Repeat("a", 64), strings.Repeat("A", 64), strings.Repeat("0", 63),
		strings.Repeat("0", 65), strings.Repeat("g", 64), "Bearer " + strings.Repeat("a", 64), "\x00\xff", "%2e%2e"} {
		f.Add(seed)
	}
	ms, err := drivers.Open(context.Background(), "memory://")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ms.Close() })
	cs := &countingStore{Store: ms}
	m, err := session.New(cs, [][]byte{fuzzSecret}, nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		cs.mu.Lock()
		before := cs.calls
		cs.mu.Unlock()
		_, err := m.Validate(ctx, tok)
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Validate(%q) = %v, want ErrNotFound", tok, err)
		}
		cs.mu.Lock()
		after := cs.calls
		cs.mu.Unlock()
		if !wellFormed.MatchString(tok) && after != before {
			t.Fatalf("Validate(%q), a malformed token, made %d store calls", tok, after-before)
		}
		if err := m.Revoke(ctx, tok); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Revoke(%q) = %v, want ErrNotFound", tok, err)
		}
	})
}
