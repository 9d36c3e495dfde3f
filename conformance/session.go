package conformance

import "testing"

// RunSession runs the session layer's cases against stores from newHarness.
func RunSession(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	t.Skip("the session layer has not landed yet")
}
