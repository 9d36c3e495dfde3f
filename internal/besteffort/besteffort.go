// Package besteffort runs the cleanup calls a layer makes after its main
// work (deleting a pointer a failed create left, the pointers of revoked
// tokens, a cache lease): calls that must not be lost to the caller's
// cancellation, and must not hold the caller past its deadline either.
package besteffort

import (
	"context"
	"time"
)

// Timeout bounds a cleanup call that runs in the background.
const Timeout = 2 * time.Second

// Do runs call within ctx when ctx has time left; when ctx is already done,
// or ran out during the call, it runs call once more in a goroutine of its
// own, bounded by Timeout and detached from ctx's cancellation (values
// kept). Do never waits past ctx's deadline, and the goroutine it may
// start ends within Timeout whatever the store does. A call that fails for
// another reason while ctx has time left is not retried: cleanups are best
// effort, and what they would delete expires by itself.
func Do(ctx context.Context, call func(context.Context) error) {
	if ctx.Err() == nil {
		if err := call(ctx); err == nil || ctx.Err() == nil {
			return
		}
	}
	go func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
		defer cancel()
		_ = call(c)
	}()
}
