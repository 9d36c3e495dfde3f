package drivercore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

func TestGate(t *testing.T) {
	var g Gate
	ctx := context.Background()
	if err := g.Begin(ctx, "{a}x", "{a}y"); err != nil {
		t.Fatal(err)
	}
	if err := g.Begin(ctx, "x", "y"); !errors.Is(err, store.ErrCrossSlot) {
		t.Fatalf("cross-slot: %v", err)
	}
	if err := g.BeginTTL(ctx, "x", -time.Second); !errors.Is(err, store.ErrInvalidTTL) {
		t.Fatalf("negative ttl: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Begin(canceled, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("a done context comes before key checks: %v", err)
	}
	_ = g.End(store.ErrNotFound)
	if calls, errs := g.Counts(); calls != 4 || errs != 2 {
		t.Fatalf("counts = %d calls, %d errors; want 4, 2 (not-found and cancellation do not count)", calls, errs)
	}
	if !g.Close() || g.Close() {
		t.Fatal("Close reports true once")
	}
	if err := g.Begin(canceled, ""); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("closed comes first: %v", err)
	}
}

func TestCounter(t *testing.T) {
	var c Counter
	done := make(chan struct{})
	for range 4 {
		go func() {
			for range 1000 {
				c.Add(1)
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	c.Add(5)
	if got := c.Load(); got != 4005 {
		t.Fatalf("Load = %d, want 4005", got)
	}
}
