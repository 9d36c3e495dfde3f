package redisdrv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/drivercore"
	"github.com/karat-go/karat/store"
)

func TestScanPattern(t *testing.T) {
	for prefix, want := range map[string]string{
		"":             "*",
		"karat:sess:":  "karat:sess:*",
		`a*b?c[d]e\f`:  `a\*b\?c\[d\]e\\f*`,
		"%2A{tag}:x y": "%2A{tag}:x y*",
	} {
		if got := ScanPattern(prefix); got != want {
			t.Errorf("ScanPattern(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestCountsAsError(t *testing.T) {
	cause := errors.New("cause")
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("%w: %w", store.ErrNotFound, cause), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{TransportError(canceled(), cause), false},
		{fmt.Errorf("%w: %w: %w", store.ErrUnavailable, context.DeadlineExceeded, cause), true},
		{fmt.Errorf("%w: %w", store.ErrWrongType, cause), true},
		{store.ErrClosed, true},
	} {
		if got := drivercore.CountsAsError(c.err); got != c.want {
			t.Errorf("CountsAsError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestScriptReplyMessage(t *testing.T) {
	for msg, want := range map[string]string{
		"ERR Error compiling script (new function): :1: WRONGTYPE Operation against a key stack traceback: [G]: ?": "WRONGTYPE Operation against a key stack traceback: [G]: ?",
		"ERR Error compiling script (new function): <string>:12: ERR value is not an integer or out of range":      "ERR value is not an integer or out of range",
		"WRONGTYPE Operation against a key holding the wrong kind of value script: 1a2b, on @user_script:2.":       "WRONGTYPE Operation against a key holding the wrong kind of value script: 1a2b, on @user_script:2.",
		"CONFLICT have 3": "CONFLICT have 3",
	} {
		if got := ScriptReplyMessage(msg); got != want {
			t.Errorf("ScriptReplyMessage(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestFromPTTLClamps(t *testing.T) {
	for ms, want := range map[int64]time.Duration{
		1500:                        1500 * time.Millisecond,
		0:                           time.Millisecond,
		-1:                          0,
		int64(store.MaxTTL / 1e6):   store.MaxTTL,
		int64(store.MaxTTL/1e6) + 1: store.MaxTTL,
		9_000_000_000_000_000:       store.MaxTTL,
	} {
		if got, err := FromPTTL(ms); err != nil || got != want {
			t.Errorf("FromPTTL(%d) = %v, %v; want %v", ms, got, err, want)
		}
	}
	if _, err := FromPTTL(-2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FromPTTL(-2) = %v", err)
	}
}
