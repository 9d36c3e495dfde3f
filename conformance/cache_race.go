//go:build race

package conformance

// raceDetector: the race detector slows the 100,000-key case ten times
// over, so under -race it runs with fewer keys (and says so).
const raceDetector = true
