package redisdrv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

func TestConfigReplies(t *testing.T) {
	cause := errors.New("cause")
	for msg, config := range map[string]bool{
		"WRONGPASS invalid username-password pair or user is disabled.":  true,
		"NOAUTH Authentication required.":                                true,
		"NOPERM User pinger has no permissions to run the 'get' command": true,
		"ERR DB index is out of range":                                   true,
		"ERR invalid DB index":                                           true,
		"ERR AUTH <password> called without any password configured for the default user. Are you sure your ...": true,
		"ERR Client sent AUTH, but no password is set":                                                           true,
		"LOADING Redis is loading the dataset in memory":                                                         false,
		"ERR value is not an integer or out of range":                                                            false,
	} {
		err := ReplyError(msg, cause, false)
		if got := errors.Is(err, store.ErrConfig); got != config {
			t.Errorf("ReplyError(%q) = %v: ErrConfig %v, want %v", msg, err, got, config)
		}
		if config && errors.Is(err, store.ErrUnavailable) {
			t.Errorf("ReplyError(%q) = %v is also ErrUnavailable", msg, err)
		}
	}
}

// lateCtx is a context whose deadline has passed but whose timer has not
// fired yet: Err is still nil.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestTransportErrorPassedDeadline: a transport timeout met after the
// caller's deadline carries context.DeadlineExceeded even before the
// context's own timer has fired (go-redis's "i/o timeout" raced it under
// load in DeadlineWhileBusy).
func TestTransportErrorPassedDeadline(t *testing.T) {
	cause := errors.New("i/o timeout")
	err := TransportError(lateCtx{context.Background()}, cause)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, cause) {
		t.Fatalf("TransportError = %v; want ErrUnavailable, DeadlineExceeded and the cause", err)
	}
	if err := TransportError(context.Background(), cause); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a deadline: %v", err)
	}
}
