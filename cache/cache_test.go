package cache_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

func TestNewRefusesBadPolicies(t *testing.T) {
	s := memstore.New(nil)
	defer s.Close()
	for name, p := range map[string]cache.Policy{
		"no name":         {TTL: time.Second},
		"no TTL":          {Name: "x"},
		"jitter over TTL": {Name: "x", TTL: time.Second, Jitter: time.Second},
		"negative jitter": {Name: "x", TTL: time.Second, Jitter: -1},
		"negative NegTTL": {Name: "x", TTL: time.Second, NegativeTTL: -1},
		"negative SWR":    {Name: "x", TTL: time.Second, StaleWhileRevalidate: -1},
		"negative XFetch": {Name: "x", TTL: time.Second, EarlyRefresh: -1},
		"empty tag":       {Name: "x", TTL: time.Second, Tags: []string{""}},
	} {
		if _, err := cache.New[string](s, p, nil); !errors.Is(err, cache.ErrInvalidPolicy) {
			t.Errorf("%s: New returned %v, want ErrInvalidPolicy", name, err)
		}
	}
	if _, err := cache.New[string](nil, cache.KPI, nil); !errors.Is(err, cache.ErrInvalidPolicy) {
		t.Errorf("nil store: %v", err)
	}
}

func TestBytesCodec(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	c, err := cache.New(s, cache.Policy{Name: "raw", TTL: time.Hour}, &cache.Options[[]byte]{Codec: cache.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	in := []byte("\x00raw\xff")
	if err := c.Set(ctx, "t", "k", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X' // the cache copied it
	for range 2 {
		v, err := c.Get(ctx, "t", "k")
		if err != nil || string(v) != "\x00raw\xff" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	raw, _ := c.Key("t", "k")
	stored, err := s.Get(ctx, raw)
	if err != nil || !strings.HasSuffix(string(stored), "\x00raw\xff") {
		t.Errorf("stored %q, %v: the raw value follows the header as is", stored, err)
	}
}

func TestLoaderPanicIsAnError(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	c, _ := cache.New[string](s, cache.Policy{Name: "p", TTL: time.Hour}, nil)
	_, err := c.GetOrLoad(ctx, "t", "k", func(context.Context) (string, error) { panic("boom") })
	if !errors.Is(err, cache.ErrLoaderPanic) {
		t.Fatalf("got %v, want ErrLoaderPanic", err)
	}
	v, err := c.GetOrLoad(ctx, "t", "k", func(context.Context) (string, error) { return "ok", nil })
	if err != nil || v != "ok" {
		t.Fatalf("after a panic the lease is released: %q, %v", v, err)
	}
}

// A caller whose deadline passes leaves the shared load; the others, and
// the cache, get its value.
func TestCallerDeadlineDoesNotCancelSharedLoad(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	c, _ := cache.New[string](s, cache.Policy{Name: "p", TTL: time.Hour}, nil)
	release := make(chan struct{})
	var loads atomic.Int64
	load := func(ctx context.Context) (string, error) {
		loads.Add(1)
		select {
		case <-release:
			return "v", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.GetOrLoad(short, "t", "k", load); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned %v after a 20ms deadline", d)
	}
	done := make(chan string)
	go func() {
		v, _ := c.GetOrLoad(ctx, "t", "k", load)
		done <- v
	}()
	close(release)
	if v := <-done; v != "v" {
		t.Errorf("the second caller got %q", v)
	}
	if loads.Load() != 1 {
		t.Errorf("%d loads, want 1", loads.Load())
	}
}

// EarlyRefresh: a hit close to expiry (relative to how long a load takes)
// refreshes in the background and returns the current value at once.
func TestEarlyRefreshLoadsInBackground(t *testing.T) {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	defer s.Close()
	c, _ := cache.New(s, cache.Policy{Name: "hot", TTL: 10 * time.Second, EarlyRefresh: 1000},
		&cache.Options[int]{Clock: clock.Now, LocalEntries: -1})
	var loads atomic.Int64
	load := func(context.Context) (int, error) {
		n := loads.Add(1)
		clock.Advance(time.Second) // the load "takes" a second
		return int(n), nil
	}
	v, err := c.GetOrLoad(ctx, "t", "k", load)
	if err != nil || v != 1 {
		t.Fatalf("%d, %v", v, err)
	}
	// XFetch draws: with EarlyRefresh 1000, a 1 s load and 10 s left, a hit
	// starts a refresh (in the background) with a chance of 99%. A hit, then
	// a wait for its refresh's load to start; another hit only if none did,
	// so that the test is not a 1-in-100 flake.
	for i := 0; loads.Load() < 2; i++ {
		if i == 20 {
			t.Fatal("20 hits and no early refresh started with EarlyRefresh 1000 and a 1 s load")
		}
		v, err = c.GetOrLoad(ctx, "t", "k", load)
		if err != nil || v != 1 {
			t.Fatalf("the hit returns the current value at once: %d, %v", v, err)
		}
		for wait := time.Now().Add(time.Second); loads.Load() < 2 && time.Now().Before(wait); {
			<-time.After(time.Millisecond) // polling for the background load to start
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Refreshes == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no early refresh with EarlyRefresh 1000 and a 1 s load")
		}
		<-time.After(time.Millisecond) // polling for the background refresh
	}
	if v, _ := c.Get(ctx, "t", "k"); v != 2 {
		t.Errorf("after the refresh Get = %d, want 2", v)
	}
}

// TestIsFallbackTellsTheLoader: a loader called to fill the cache sees
// IsFallback false; one called around a failing store (FallbackToLoader,
// here a closed store) sees true, and its value is returned.
func TestIsFallbackTellsTheLoader(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	c, err := cache.New[string](s, cache.Policy{Name: "fb", TTL: time.Hour, FallbackToLoader: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fellBack atomic.Bool
	load := func(ctx context.Context) (string, error) {
		fellBack.Store(cache.IsFallback(ctx))
		return "v", nil
	}
	if v, err := c.GetOrLoad(ctx, "shop", "a", load); err != nil || v != "v" || fellBack.Load() {
		t.Fatalf("a normal load: %q %v, IsFallback %v", v, err, fellBack.Load())
	}
	s.Close()
	if v, err := c.GetOrLoad(ctx, "shop", "b", load); err != nil || v != "v" || !fellBack.Load() {
		t.Fatalf("a load around a closed store: %q %v, IsFallback %v", v, err, fellBack.Load())
	}
	if cache.IsFallback(ctx) {
		t.Error("IsFallback on a plain context")
	}
}

// scriptStaller is a memory store that, once stalled, hangs one script
// until the call's context is done. A call made without a deadline would
// wait for ever on a stalled Redis: it is counted, and let go after a while
// so that the test can say so.
type scriptStaller struct {
	store.Store
	script    *store.Script
	stalled   atomic.Bool
	unbounded atomic.Int64
}

func (s *scriptStaller) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if sc != s.script || !s.stalled.Load() {
		return s.Store.Eval(ctx, sc, keys, args...)
	}
	if _, ok := ctx.Deadline(); !ok {
		s.unbounded.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
			return store.Value{}, store.ErrUnavailable
		}
	}
	<-ctx.Done()
	return store.Value{}, store.ErrUnavailable
}

// TestLeaseReleaseKeepsTheDeadline: a load that fails gives its lease back,
// and when the store stalls at that moment, GetOrLoad still returns with
// the loader's error once StoreTimeout has passed, well before its
// caller's deadline; the release gets a deadline of its own (before, it
// ran detached from every deadline and the caller waited for the stall to
// end).
func TestLeaseReleaseKeepsTheDeadline(t *testing.T) {
	s := &scriptStaller{Store: memstore.New(nil), script: cache.ReleaseScript}
	defer s.Close()
	c, _ := cache.New(s, cache.Policy{Name: "p", TTL: time.Hour}, &cache.Options[string]{StoreTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	boom := errors.New("the data source failed")
	done := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "t", "k", func(context.Context) (string, error) {
			s.stalled.Store(true)
			return "", boom
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Errorf("GetOrLoad: %v, want the loader's error", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("GetOrLoad whose lease release stalled did not return within 2 s (deadline 1 s)")
		<-done
	}
	if n := s.unbounded.Load(); n > 0 {
		t.Errorf("%d lease releases without a deadline", n)
	}
}

// TestFillKeepsStoreTimeout: a value loaded just before the store stalls is
// answered once StoreTimeout has passed on storing it, not at the caller's
// deadline (before, the fill ran on the shared load's LoadTimeout, and the
// caller got a deadline error: `karat serve` answered a KPI request after
// 2.4 s in CI, when the stall ended).
func TestFillKeepsStoreTimeout(t *testing.T) {
	s := &scriptStaller{Store: memstore.New(nil), script: cache.FillScript}
	defer s.Close()
	c, _ := cache.New(s, cache.Policy{Name: "p", TTL: time.Hour}, &cache.Options[string]{StoreTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := c.GetOrLoad(ctx, "t", "k", func(context.Context) (string, error) {
		s.stalled.Store(true)
		return "loaded", nil
	})
	if err != nil || v != "loaded" {
		t.Fatalf("GetOrLoad with the fill stalled: %q, %v; want the loaded value", v, err)
	}
	if ctx.Err() != nil {
		t.Error("answered only at the caller's deadline")
	}
	if st := c.Stats(); st.Errors == 0 {
		t.Errorf("the failed fill was not counted: %+v", st)
	}
}
