package memstore_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// holdShard runs, in the background, a script whose Go body holds the shard
// of keys until release is called (or 10 s pass), and returns once the body
// is running.
func holdShard(t *testing.T, s *memstore.Store, keys ...string) (release func()) {
	t.Helper()
	entered, done, free := make(chan struct{}), make(chan struct{}), make(chan struct{})
	hold := store.NewScript("hold", "return 1", func(store.ScriptView, []string, []string) (store.Value, error) {
		select {
		case <-entered:
		default:
			close(entered)
		}
		select {
		case <-free:
		case <-time.After(10 * time.Second):
		}
		return store.IntValue(1), nil
	})
	go func() {
		defer close(done)
		_, _ = s.Eval(context.Background(), hold, keys)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the holding script never started")
	}
	var once sync.Once
	release = func() {
		once.Do(func() { close(free) })
		<-done
	}
	t.Cleanup(release)
	return release
}

// TestWaitForShardHonoursContext: a call that waits for a shard another call
// holds returns its context's error by its deadline (issue 5, item 1).
func TestWaitForShardHonoursContext(t *testing.T) {
	const deadline = 50 * time.Millisecond
	const bound = time.Second // generous: the machine is shared
	noop := store.NewScript("noop", "return 1", func(store.ScriptView, []string, []string) (store.Value, error) {
		return store.IntValue(1), nil
	})
	for _, tc := range []struct {
		name string
		held []string // what the holder declares: nil holds the shard of keyless calls
		call func(ctx context.Context, s *memstore.Store) error
	}{
		{"Get", []string{"{a}x"}, func(ctx context.Context, s *memstore.Store) error { _, err := s.Get(ctx, "{a}y"); return err }},
		{"Set", []string{"{a}x"}, func(ctx context.Context, s *memstore.Store) error { return s.Set(ctx, "{a}y", []byte("v"), 0) }},
		{"Eval", []string{"{a}x"}, func(ctx context.Context, s *memstore.Store) error {
			_, err := s.Eval(ctx, noop, []string{"{a}y"})
			return err
		}},
		{"Ping", nil, func(ctx context.Context, s *memstore.Store) error { return s.Ping(ctx) }},
		{"Scan", []string{"{a}x"}, func(ctx context.Context, s *memstore.Store) error {
			return s.Scan(ctx, "", func([]string) error { return nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memstore.New(nil)
			defer s.Close()
			release := holdShard(t, s, tc.held...)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- tc.call(ctx, s) }()
			returned := false
			select {
			case err := <-done:
				returned = true
				took := time.Since(start)
				if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("%s while the shard is held: err = %v, want ErrUnavailable and DeadlineExceeded (after %v)", tc.name, err, took)
				}
				if took > bound {
					t.Errorf("%s returned after %v with a %v deadline", tc.name, took, deadline)
				}
			case <-time.After(bound):
				t.Errorf("%s did not return within %v of its %v deadline", tc.name, bound, deadline)
			}
			release()
			if !returned {
				<-done
			}
		})
	}
	t.Run("Canceled", func(t *testing.T) {
		s := memstore.New(nil)
		defer s.Close()
		holdShard(t, s, "{a}x")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := s.Get(ctx, "{a}y"); done <- err }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("cancelled while waiting: %v, want context.Canceled only", err)
			}
		case <-time.After(bound):
			t.Error("a cancelled call kept waiting for the shard")
		}
	})
}

// TestCloseDoesNotWaitForHeldShard: Close returns at once while a script
// holds a shard, a call waiting for that shard returns ErrClosed, and the
// held shard's data is dropped when the script returns.
func TestCloseDoesNotWaitForHeldShard(t *testing.T) {
	s := memstore.New(nil)
	if err := s.Set(ctx, "{a}k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	release := holdShard(t, s, "{a}x")
	waiting := make(chan error, 1)
	go func() { _, err := s.Get(context.Background(), "{a}k"); waiting <- err }()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close waited for a shard held by a running script")
	}
	select {
	case err := <-waiting:
		// It may have been refused at its start (closed already) or while
		// waiting: ErrClosed either way.
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("a call waiting for the shard when the store closed: %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Error("a call waiting for a held shard kept waiting after Close")
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Keys != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the held shard's keys were not dropped after its script returned: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond) // polling for the background drop, not timing it
	}
}

// TestScriptWithoutGoBody: a script whose Go body is nil fails with a clear
// error (errors.ErrUnsupported), never a panic (issue 5, item 6).
func TestScriptWithoutGoBody(t *testing.T) {
	s := memstore.New(nil)
	defer s.Close()
	luaOnly := store.NewScript("lua-only", "return 1", nil)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Eval of a script without a Go body panicked: %v", r)
			}
		}()
		_, err = s.Eval(ctx, luaOnly, []string{"k"})
	}()
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Eval of a script without a Go body: %v, want errors.ErrUnsupported", err)
	}
	if st := s.Stats(); st.Keys != 0 {
		t.Errorf("it wrote something: %+v", st)
	}
}

// TestKeylessScriptCannotWriteEmptyKey: a script that declares no keys
// cannot touch any key, "" included (issue 5, item 11).
func TestKeylessScriptCannotWriteEmptyKey(t *testing.T) {
	s := memstore.New(nil)
	defer s.Close()
	sneaky := store.NewScript("sneaky", "return redis.call('SET', '', 'x')", func(v store.ScriptView, _, _ []string) (store.Value, error) {
		if err := v.Set("", []byte("x"), 0); err != nil {
			return store.Value{}, err
		}
		return store.StringValue("OK"), nil
	})
	_, err := s.Eval(ctx, sneaky, nil)
	if !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("a keyless script writing \"\": %v, want ErrInvalidKey", err)
	}
	if st := s.Stats(); st.Keys != 0 {
		t.Errorf("the key \"\" was written: %+v", st)
	}
}

// TestTTLOverflowClamped: a TTL of math.MaxInt64 ("forever") keeps the key,
// with a TTL clamped to store.MaxTTL (issue 5, item 2).
func TestTTLOverflowClamped(t *testing.T) {
	clock := memstore.NewFakeClock(time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	defer s.Close()
	forever := time.Duration(math.MaxInt64)
	if err := s.Set(ctx, "k", []byte("v"), forever); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	ttl, err := s.TTL(ctx, "k")
	if err != nil {
		t.Fatalf("a key set with ttl MaxInt64 is gone: %v", err)
	}
	if want := store.MaxTTL - time.Hour; ttl != want {
		t.Errorf("TTL = %v, want %v", ttl, want)
	}
	clock.Set(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) // backwards: the remaining time exceeds MaxTTL
	ttl, err = s.TTL(ctx, "k")
	if err != nil || ttl != store.MaxTTL {
		t.Errorf("TTL with the clock set back = %v, %v; want %v", ttl, err, store.MaxTTL)
	}
}

// TestScriptPanicIsAnError: a Go body that panics fails its call with a
// *store.ScriptError, commits none of its writes, and leaves the shard
// usable; before, the panic reached the caller (a process down, for a bug
// in one script).
func TestScriptPanicIsAnError(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	sc := store.NewScript("panics", "return 1", func(v store.ScriptView, keys, args []string) (store.Value, error) {
		if err := v.Set(keys[0], []byte("half"), 0); err != nil {
			return store.Value{}, err
		}
		return store.IntValue(int64(len(args[3]))), nil // no args: index out of range, the body's bug
	})
	_, err := s.Eval(ctx, sc, []string{"{p}k"})
	var se *store.ScriptError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "panicked") {
		t.Fatalf("Eval of a panicking body: %v, want a *store.ScriptError", err)
	}
	if _, err := s.Get(ctx, "{p}k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the panicking body's write was committed: %v", err)
	}
	if err := s.Set(ctx, "{p}k", []byte("v"), 0); err != nil {
		t.Errorf("the shard after the panic: %v", err)
	}
}
