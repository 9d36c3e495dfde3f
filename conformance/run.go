package conformance

import "testing"

// Run runs every suite against stores from newHarness: the store cases as
// subtests named after the cases, then each layer's cases under "session",
// "cache" and "ratelimit". A driver's test, or a test against your own Redis,
// calls Run to prove everything karat promises on that store.
func Run(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	RunStore(t, newHarness)
	t.Run("session", func(t *testing.T) { RunSession(t, newHarness) })
	t.Run("cache", func(t *testing.T) { RunCache(t, newHarness) })
	t.Run("ratelimit", func(t *testing.T) { RunRateLimit(t, newHarness) })
}
