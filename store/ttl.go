package store

import (
	"fmt"
	"math"
	"time"
)

// MaxTTL is the longest TTL a store keeps: the largest whole number of
// milliseconds a time.Duration holds (about 292 years). A longer ttl, the
// "forever" of math.MaxInt64 included, is clamped to MaxTTL by every driver:
// the key is kept, and expires MaxTTL after the call. Redis itself accepts
// longer TTLs (up to the year 292 million), but a longer one could not be read
// back as a Duration by TTL, and a miniredis-backed store would overflow.
// Clamping, rather than refusing with ErrInvalidTTL, keeps the common idiom
// of a huge ttl meaning "practically never" working.
const MaxTTL = time.Duration(math.MaxInt64 / int64(time.Millisecond) * int64(time.Millisecond))

// ValidateTTL returns ErrInvalidTTL for a negative ttl.
func ValidateTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: %v is negative", ErrInvalidTTL, ttl)
	}
	return nil
}

// TTLMillis converts a valid positive ttl to whole milliseconds, rounding up
// and clamping to MaxTTL, which is what every driver sends and keeps. It
// returns 0 for ttl <= 0.
func TTLMillis(ttl time.Duration) int64 {
	switch {
	case ttl <= 0:
		return 0
	case ttl > MaxTTL-time.Millisecond: // rounds up to MaxTTL or beyond; also keeps the sum below from overflowing
		return int64(MaxTTL / time.Millisecond)
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// RoundTTL rounds a positive ttl up to a whole millisecond and clamps it to
// MaxTTL. It returns 0 for ttl <= 0.
func RoundTTL(ttl time.Duration) time.Duration {
	return time.Duration(TTLMillis(ttl)) * time.Millisecond
}
