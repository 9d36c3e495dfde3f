package memstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

// TestCtxMutex: mutual exclusion and progress under contention, with
// waiters that give up on their contexts in between.
func TestCtxMutex(t *testing.T) {
	m := newCtxMutex()
	var inside atomic.Int32
	counter := 0 // guarded by m: the race detector checks it
	var gaveUp atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (g+i)%5 == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Microsecond)
				}
				err := m.lock(ctx, nil)
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Error(err)
						return
					}
					gaveUp.Add(1)
					continue
				}
				if inside.Add(1) != 1 {
					t.Error("two holders at once")
				}
				counter++
				inside.Add(-1)
				m.unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("waiters never woke: a lost wake-up")
	}
	if !m.tryLock() {
		t.Fatal("the mutex is left held")
	}
	m.unlock()
	t.Logf("%d acquisitions, %d waits given up", counter, gaveUp.Load())
	if counter+int(gaveUp.Load()) != 16*2000 {
		t.Errorf("%d acquisitions + %d given up != %d", counter, gaveUp.Load(), 16*2000)
	}
}

// TestCtxMutexClosing: a waiter returns when closing is closed.
func TestCtxMutexClosing(t *testing.T) {
	m := newCtxMutex()
	m.lockWait()
	closing := make(chan struct{})
	got := make(chan error, 1)
	go func() { got <- m.lock(context.Background(), closing) }()
	close(closing)
	select {
	case err := <-got:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("lock while closing: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiter did not notice the store closing")
	}
}
