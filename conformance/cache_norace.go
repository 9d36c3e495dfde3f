//go:build !race

package conformance

// raceDetector: see cache_race.go.
const raceDetector = false
