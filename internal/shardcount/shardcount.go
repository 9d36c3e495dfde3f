// Package shardcount is a uint64 counter that goroutines on different cores
// seldom write on the same cache line, for counters every call increments
// (the drivers' call counts, the rate limiter's decisions).
package shardcount

import (
	"sync/atomic"
	"unsafe"
)

// Counter is a uint64 counter for hot paths. A single atomic word that every
// call increments moves between cores on every call (the cache line
// "bounces"); on the client-side-cache hit path of rueidisstore that cost was
// a visible share of the call. Add increments one of counterCells cells, each
// on its own cache line, picked by the address of the calling goroutine's
// stack (goroutines have stacks of their own, so concurrent callers mostly
// pick different cells; a nanosecond, where a random number cost several),
// so that goroutines running on different cores seldom write the same line;
// Load sums the cells. The zero value is zero.
type Counter struct {
	_     [64]byte // keeps the fields around the counter off its cache lines
	cells [counterCells]paddedUint64
	_     [64]byte
}

const (
	counterBits  = 3
	counterCells = 1 << counterBits
)

type paddedUint64 struct {
	n atomic.Uint64
	_ [56]byte // one cell per 64-byte cache line
}

// Add adds n.
func (c *Counter) Add(n uint64) {
	var here byte
	// Stacks are at least 2 KiB, so the bits above the 11th tell
	// goroutines apart; a multiplicative hash mixes them into the top bits
	// (stack sizes are powers of two, so the low ones alone would pick few
	// cells).
	h := uint64(uintptr(unsafe.Pointer(&here))>>11) * 0x9e3779b97f4a7c15
	c.cells[h>>(64-counterBits)].n.Add(n)
}

// Load returns the sum of the cells. Adds that run meanwhile may or may not
// be included.
func (c *Counter) Load() uint64 {
	var sum uint64
	for i := range c.cells {
		sum += c.cells[i].n.Load()
	}
	return sum
}
