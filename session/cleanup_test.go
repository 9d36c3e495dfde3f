package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// stallingStore is a memory store that, once stalled, hangs every Eval and
// Delete until the call's context is done, as a Redis behind a silent
// partition. A call made without a deadline would hang for ever there: it
// is counted, and let go after a while so that the test can say so.
type stallingStore struct {
	store.Store
	stalled   atomic.Bool
	unbounded atomic.Int64
}

func (s *stallingStore) stall(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		s.unbounded.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
			return fmt.Errorf("%w: test: a call without a deadline, let go", store.ErrUnavailable)
		}
	}
	<-ctx.Done()
	return fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

func (s *stallingStore) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if s.stalled.Load() {
		return store.Value{}, s.stall(ctx)
	}
	return s.Store.Eval(ctx, sc, keys, args...)
}

func (s *stallingStore) Delete(ctx context.Context, keys ...string) (int64, error) {
	if s.stalled.Load() {
		return 0, s.stall(ctx)
	}
	return s.Store.Delete(ctx, keys...)
}

// TestCleanupsKeepTheDeadline: when the store stalls in the middle of a
// Create or a Rotate (the pointer written, the script hanging), the call
// returns ErrUnavailable by its deadline, and the cleanup of the pointer
// it wrote does not run without a deadline of its own. The same for the
// pointers a revocation deletes after its script. Before, each cleanup
// ran detached from every deadline: a login through `karat serve` waited
// for a stalled Redis to come back (2.4 s in CI).
func TestCleanupsKeepTheDeadline(t *testing.T) {
	s := &stallingStore{Store: memstore.New(nil)}
	defer s.Close()
	m, err := New(s, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	tok, _, err := m.Create(bg, "ann", "shop", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 100 * time.Millisecond
	within := func(name string, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bg, deadline)
		defer cancel()
		s.stalled.Store(true)
		defer s.stalled.Store(false)
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with the store stalled: %v, want ErrUnavailable", name, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s with the store stalled did not return within 2 s (deadline %v)", name, deadline)
			<-done
		}
	}
	within("Create", func(ctx context.Context) error { _, _, err := m.Create(ctx, "ann", "shop", Meta{}); return err })
	within("Rotate", func(ctx context.Context) error { _, _, err := m.Rotate(ctx, tok); return err })
	if n := s.unbounded.Load(); n > 0 {
		t.Errorf("%d cleanup calls without a deadline", n)
	}

	// A revocation whose script ran and whose pointer deletes stall.
	s.unbounded.Store(0)
	var others []string
	for range 3 {
		tk, _, err := m.Create(bg, "bob", "shop", Meta{})
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, tk)
	}
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	stalledDeletes := &deleteStaller{stallingStore: s}
	m2, err := New(stalledDeletes, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := m2.RevokeAll(ctx, "bob"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RevokeAll (script ran, pointer deletes stalled): %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("RevokeAll with its pointer deletes stalled did not return within 2 s")
		<-done
	}
	if n := s.unbounded.Load(); n > 0 {
		t.Errorf("%d pointer deletes without a deadline", n)
	}
	if _, err := m.Validate(bg, others[0]); err != ErrNotFound {
		t.Errorf("a revoked session validates: %v", err)
	}
}

// deleteStaller lets scripts through and stalls every Delete.
type deleteStaller struct{ *stallingStore }

func (s *deleteStaller) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	return s.stallingStore.Store.Eval(ctx, sc, keys, args...)
}

func (s *deleteStaller) Delete(ctx context.Context, keys ...string) (int64, error) {
	return 0, s.stall(ctx)
}
