package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/karat-go/karat/store"
)

// bytesReader is a CachedReader without the string form.
type bytesReader struct{ calls int }

func (r *bytesReader) GetCached(_ context.Context, key string, _ time.Duration) ([]byte, error) {
	r.calls++
	if key == "missing" {
		return nil, store.ErrNotFound
	}
	return []byte("v:" + key), nil
}

// bothReader has the string form too.
type bothReader struct{ bytesReader }

func (r *bothReader) GetCachedString(_ context.Context, key string, _ time.Duration) (string, error) {
	return "s:" + key, nil
}

// countingWrapper wraps GetCached only, as a tracing wrapper would.
type countingWrapper struct {
	inner store.CachedReader
	n     int
}

func (w *countingWrapper) GetCached(ctx context.Context, key string, maxStale time.Duration) ([]byte, error) {
	w.n++
	return w.inner.GetCached(ctx, key, maxStale)
}

func TestCachedStrings(t *testing.T) {
	ctx := context.Background()
	b := &bytesReader{}
	v, err := store.CachedStrings(b).GetCachedString(ctx, "k", time.Second)
	if err != nil || v != "v:k" {
		t.Fatalf("adapter: %q, %v", v, err)
	}
	if _, err := store.CachedStrings(b).GetCachedString(ctx, "missing", time.Second); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("adapter keeps the error: %v", err)
	}
	both := &bothReader{}
	if v, _ := store.CachedStrings(both).GetCachedString(ctx, "k", time.Second); v != "s:k" {
		t.Fatalf("a reader with the string form is used as it is: got %q", v)
	}
	// A wrapper of GetCached alone is not looked through: its counting sees
	// every read.
	w := &countingWrapper{inner: both}
	if v, _ := store.CachedStrings(w).GetCachedString(ctx, "k", time.Second); v != "v:k" || w.n != 1 {
		t.Fatalf("the wrapper was bypassed: got %q after %d wrapped calls", v, w.n)
	}
}
