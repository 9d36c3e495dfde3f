package conformance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestPartitionSkipReasons (issue 5, item 4): the reason the partition case
// skips names what the harness lacks: an external single server is not
// said to be a cluster.
func TestPartitionSkipReasons(t *testing.T) {
	external := &redisHarness{t: t, url: "redis://127.0.0.1:1"}
	_, _, err := external.PartitionedStore(context.Background())
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("external harness: %v, want ErrUnsupported", err)
	}
	if strings.Contains(err.Error(), "cluster") || !strings.Contains(err.Error(), "URL") {
		t.Errorf("external single-server harness skip reason: %q", err)
	}
	cluster := &redisHarness{t: t, url: "redis+cluster://127.0.0.1:1", pause: []string{"127.0.0.1:1"}}
	if _, _, err := cluster.PartitionedStore(context.Background()); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("cluster harness skip reason: %v", err)
	}
}
