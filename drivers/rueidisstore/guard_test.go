package rueidisstore

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// waitingClient stands in for rueidis while it reconnects: its first call
// fails in transport, the following ones wait (for release) whatever their
// context, as a call does in rueidis's mux while a connection is set up.
type waitingClient struct {
	rueidis.Client
	calls   int
	release chan struct{}
}

func (w *waitingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	w.calls++
	if w.calls == 1 {
		return rueidis.NewErrorResult(io.ErrUnexpectedEOF)
	}
	<-w.release
	return rueidis.NewErrorResult(errors.New("too late"))
}

// TestGuardAnswersByTheDeadline: calm, a call goes straight to rueidis (on
// the caller's goroutine); after a transport error, a call that rueidis
// holds past its deadline is answered at the deadline with the context's
// error, and the window closes by itself.
func TestGuardAnswersByTheDeadline(t *testing.T) {
	w := &waitingClient{release: make(chan struct{})}
	defer close(w.release)
	g := &guardedClient{Client: w}
	ctx := context.Background()
	if g.guarded(ctx) {
		t.Fatal("guarded before any error")
	}
	if err := g.Do(ctx, rueidis.Completed{}).Error(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("first call: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if !g.guarded(dctx) {
		t.Fatal("not guarded after a transport error")
	}
	start := time.Now()
	err := g.Do(dctx, rueidis.Completed{}).Error()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held call: %v, want the deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("held call answered after %v", took)
	}
	// The window closes by itself once guardWindow has passed.
	g.until.Store(time.Now().Add(-time.Millisecond).UnixNano())
	if g.guarded(dctx) || g.until.Load() != 0 {
		t.Error("the guard window did not close")
	}
}

// TestGuardIgnoresCancelledCalls: a call its caller cancelled does not open
// the guard window (a server sees many clients go away); a timeout does.
func TestGuardIgnoresCancelledCalls(t *testing.T) {
	g := &guardedClient{}
	g.check(rueidis.NewErrorResult(context.Canceled))
	if g.until.Load() != 0 {
		t.Error("a cancelled call opened the guard window")
	}
	g.check(rueidis.NewErrorResult(context.DeadlineExceeded))
	if g.until.Load() == 0 {
		t.Error("a timed-out call did not open the guard window")
	}
}
