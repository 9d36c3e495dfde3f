//go:build !race

package loadtest

// raceEnabled reports whether the test binary was built with -race.
const raceEnabled = false
