package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/store"
)

// env is one case's world: a harness, a store from it, and a key prefix of
// its own. Every key the case names through env is deleted when it ends.
type env struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	s      store.Store
	prefix string
	// ns is the case's namespace (the prefix as a store.Namespace): a layer
	// under test writes its keys there, and cleanup deletes everything under
	// it through the store's Scanner.
	ns store.Namespace

	mu      sync.Mutex
	written map[string]struct{}
}

func newEnv(t *testing.T, maker HarnessMaker) *env {
	t.Helper()
	ctx := context.Background()
	h, err := maker(ctx, t)
	require.NoError(t, err, "making the harness")
	t.Cleanup(h.Close)
	s, err := h.MakeStore(ctx)
	require.NoError(t, err, "making a store")
	prefix := randomPrefix()
	e := &env{t: t, ctx: ctx, h: h, s: s, prefix: prefix, ns: store.MustNamespace(prefix), written: map[string]struct{}{}}
	t.Cleanup(e.cleanup)
	return e
}

func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "karat-conformance-" + hex.EncodeToString(b[:])
}

// cleanup deletes every key the case named, and every key under its
// namespace that the store's Scanner finds, one by one (they may span slots),
// through a fresh store: the case may have closed its own.
func (e *env) cleanup() {
	e.mu.Lock()
	keys := make([]string, 0, len(e.written))
	for k := range e.written {
		keys = append(keys, k)
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.h.MakeStore(ctx)
	if err != nil {
		e.t.Logf("cleanup: cannot make a store to delete %d keys: %v", len(keys), err)
		return
	}
	if sc, ok := store.Capability[store.Scanner](s); ok {
		err := sc.Scan(ctx, e.ns.Prefix(), func(batch []string) error {
			keys = append(keys, batch...)
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrClosed) {
			e.t.Logf("cleanup: scanning %q: %v", e.ns.Prefix(), err)
		}
	}
	for _, k := range keys {
		if _, err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrClosed) {
			e.t.Errorf("cleanup: deleting %q: %v", k, err)
			return
		}
	}
}

func (e *env) track(k string) string {
	e.mu.Lock()
	e.written[k] = struct{}{}
	e.mu.Unlock()
	return k
}

// key returns the case's key for name, untagged: different names usually
// land in different cluster slots.
func (e *env) key(name string) string {
	k, err := store.Key(e.prefix, name)
	require.NoError(e.t, err)
	return e.track(k)
}

// tagged returns the case's key for name in the case's one hash-tagged slot.
func (e *env) tagged(name string) string {
	k, err := store.TaggedKey(e.prefix, name)
	require.NoError(e.t, err)
	return e.track(k)
}

// otherSlot returns a key of the case that is not in k's slot.
func (e *env) otherSlot(k string) string {
	for i := 0; ; i++ {
		o := e.key("other-" + strconv.Itoa(i))
		if store.Slot(o) != store.Slot(k) {
			return o
		}
	}
}

func (e *env) clock() (Clock, bool) {
	c, ok := e.h.(Clock)
	return c, ok
}

// newStore makes another store instance over the same backend.
func (e *env) newStore() store.Store {
	e.t.Helper()
	s, err := e.h.MakeStore(e.ctx)
	require.NoError(e.t, err, "making a second store")
	return s
}

// passTime lets d pass for key expiry: on a harness with a Clock it advances
// it by d and a millisecond more (Redis keeps a key until its expiry instant
// has passed, not when it is reached); on a real server it returns at once
// and waitGone polls.
func (e *env) passTime(d time.Duration) {
	if c, ok := e.clock(); ok {
		c.Advance(d + time.Millisecond)
	}
}

// waitGone asserts that key stops existing by the time its ttl has passed:
// at once on a harness with a Clock (after passTime), by polling up to
// ttl plus a margin on a real server.
func (e *env) waitGone(key string, ttl time.Duration) {
	e.t.Helper()
	if _, ok := e.clock(); ok {
		_, err := e.s.TTL(e.ctx, key)
		require.ErrorIs(e.t, err, store.ErrNotFound, "key %q should have expired", key)
		return
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := e.s.TTL(e.ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		require.NoError(e.t, err)
		if time.Now().After(deadline) {
			e.t.Fatalf("key %q still exists %v after its TTL of %v", key, ttl+5*time.Second, ttl)
		}
		<-tick.C
	}
}

// hasCap reports whether the harness declares the capability.
func (e *env) hasCap(name string) bool {
	for _, c := range e.h.Capabilities() {
		if c == name {
			return true
		}
	}
	return false
}

// skipUnless skips the case unless the harness declares capability name.
func (e *env) skipUnless(name string) {
	e.t.Helper()
	if !e.hasCap(name) {
		e.t.Skipf("capability %q not declared by this harness", name)
	}
}

// needCap skips the case unless the harness declares capability name, and
// returns the store's T. A harness that declares the capability for a store
// that lacks it fails the case with a message that says so (and the suite
// goes on to the next case).
func needCap[T any](e *env, s store.Store, name string) T {
	e.t.Helper()
	e.skipUnless(name)
	c, ok := store.Capability[T](s)
	if !ok {
		e.t.Fatalf("the harness declares capability %q but its store (%T) does not offer it (store.Capability[%T] found nothing): fix the harness's Capabilities or the driver",
			name, s, (*T)(nil))
	}
	return c
}
