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
	conformance.Run(t, func(context.Context, *testing.T) (conformance.Harness, error) {
		return &redisHarness{t: t, url: url, caps: caps}, nil
	})
}
