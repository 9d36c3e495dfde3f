package store

import (
	"math"
	"testing"
	"time"
)

func TestTTLMillisClamps(t *testing.T) {
	maxMs := int64(MaxTTL / time.Millisecond)
	for _, c := range []struct {
		in   time.Duration
		want int64
	}{
		{0, 0}, {-1, 0}, {1, 1}, {time.Millisecond, 1}, {time.Millisecond + 1, 2},
		{MaxTTL - time.Millisecond, maxMs - 1},
		{MaxTTL - 1, maxMs}, {MaxTTL, maxMs}, {MaxTTL + 1, maxMs},
		{math.MaxInt64, maxMs},
	} {
		if got := TTLMillis(c.in); got != c.want {
			t.Errorf("TTLMillis(%d) = %d, want %d", c.in, got, c.want)
		}
		if got := RoundTTL(c.in); got != time.Duration(c.want)*time.Millisecond || got < 0 {
			t.Errorf("RoundTTL(%d) = %d", c.in, got)
		}
	}
	if MaxTTL%time.Millisecond != 0 || math.MaxInt64-MaxTTL >= time.Millisecond {
		t.Errorf("MaxTTL = %d is not the largest whole-millisecond Duration", MaxTTL)
	}
}
