package conformance_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/karat-go/karat/conformance"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

// TestExternal runs every suite against the store KARAT_STORE_URL names
// (any URL drivers.Open takes). It writes only under a random key prefix,
// deletes what it wrote, and never flushes. The expected capabilities are
// KARAT_STORE_CAPS (comma-separated, e.g. "cached-reads,scan,stats"), or, if
// that is unset, whatever the opened store offers.
func TestExternal(t *testing.T) {
	url := os.Getenv("KARAT_STORE_URL")
	if url == "" {
		t.Skip("KARAT_STORE_URL is not set: nothing external to test")
	}
	var caps []string
	if v, ok := os.LookupEnv("KARAT_STORE_CAPS"); ok {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				caps = append(caps, c)
			}
		}
	} else {
		s, err := drivers.Open(context.Background(), url)
		if err != nil {
			t.Fatalf("opening KARAT_STORE_URL: %v", err)
		}
		caps = store.Capabilities(s)
		s.Close()
	}
	if strings.HasPrefix(url, "memory:") {
		// Two drivers.Open("memory://") are two stores that share nothing:
		// instances of one case share one store, and the cases that need
		// other OS processes skip, saying why (no StoreURL).
		conformance.Run(t, func(ctx context.Context, _ *testing.T) (conformance.Harness, error) {
			s, err := drivers.Open(ctx, url)
			if err != nil {
				return nil, err
			}
			return &oneStoreHarness{s: s, caps: caps}, nil
		})
		return
	}
	conformance.Run(t, func(context.Context, *testing.T) (conformance.Harness, error) {
		return &redisHarness{t: t, url: url, caps: caps}, nil
	})
}

// oneStoreHarness gives every instance of a case the same store: the
// memory driver's, whose instances cannot share data otherwise.
type oneStoreHarness struct {
	s    store.Store
	caps []string
}

func (h *oneStoreHarness) MakeStore(context.Context) (store.Store, error) { return h.s, nil }
func (h *oneStoreHarness) Capabilities() []string                         { return h.caps }
func (h *oneStoreHarness) Close()                                         { h.s.Close() }
