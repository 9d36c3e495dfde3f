package conformance

import "testing"

// RunCache runs the cache layer's cases against stores from newHarness.
func RunCache(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	t.Skip("the cache layer has not landed yet")
}
