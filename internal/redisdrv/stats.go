package redisdrv

import (
	"context"
	"errors"

	"github.com/karat-go/karat/store"
)

// CountsAsError reports whether err, returned by a Store call, counts in
// store.Stats.Errors: every failure except ErrNotFound and the caller's own
// context errors. A deadline that passed while the call waited on the server
// is ErrUnavailable and counts: it says the server was slow, not that the
// caller gave up.
func CountsAsError(err error) bool {
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return false
	}
	if errors.Is(err, store.ErrUnavailable) {
		return true
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
