package besteffort

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stalled is a call that hangs until its context is done (a store that
// stopped answering), reporting each context it was given.
func stalled(seen chan<- context.Context) func(context.Context) error {
	return func(ctx context.Context) error {
		seen <- ctx
		<-ctx.Done()
		return ctx.Err()
	}
}

// TestDoNeverOutlivesTheDeadline: with a call that hangs, Do returns when
// the caller's deadline passes, then runs the call once more in the
// background under a deadline of its own, which ends it.
func TestDoNeverOutlivesTheDeadline(t *testing.T) {
	seen := make(chan context.Context, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	Do(ctx, stalled(seen))
	if ctx.Err() == nil {
		t.Fatal("Do returned before the call's context was done")
	}
	first := <-seen
	if first != ctx {
		t.Error("the first try did not run within the caller's context")
	}
	var second context.Context
	select {
	case second = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no background try after the deadline")
	}
	d, ok := second.Deadline()
	if !ok || time.Until(d) > Timeout {
		t.Fatalf("background try deadline %v (ok %v), want within %v", d, ok, Timeout)
	}
	select {
	case <-second.Done():
	case <-time.After(Timeout + 10*time.Second):
		t.Fatal("the background try's context never ended")
	}
}

// TestDoDetachedWhenCancelled: a caller that has already given up still
// gets its cleanup, in the background, with its values kept; a call that
// succeeds within the caller's context runs once; a call that fails for
// another reason while there is time left is not retried.
func TestDoDetachedWhenCancelled(t *testing.T) {
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	done := make(chan any, 1)
	Do(ctx, func(c context.Context) error {
		done <- c.Value(key{})
		return c.Err()
	})
	select {
	case v := <-done:
		if v != "v" {
			t.Errorf("background try lost the context's values: %v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled caller's cleanup never ran")
	}

	for _, res := range []error{nil, errors.New("wrong type")} {
		n := 0
		Do(context.Background(), func(context.Context) error { n++; return res })
		if n != 1 {
			t.Errorf("call returning %v ran %d times, want once", res, n)
		}
	}
}
