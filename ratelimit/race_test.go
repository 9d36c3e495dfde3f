//go:build race

package ratelimit_test

// raceEnabled: the race detector makes every memory access dear, so big
// tests run smaller.
const raceEnabled = true
