package store

import (
	"fmt"
	"time"
)

// ValidateTTL returns ErrInvalidTTL for a negative ttl.
func ValidateTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: %v is negative", ErrInvalidTTL, ttl)
	}
	return nil
}

// TTLMillis converts a valid positive ttl to whole milliseconds, rounding up,
// which is what every driver sends and keeps. It returns 0 for ttl <= 0.
func TTLMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// RoundTTL rounds a positive ttl up to a whole millisecond.
func RoundTTL(ttl time.Duration) time.Duration {
	return time.Duration(TTLMillis(ttl)) * time.Millisecond
}
