package ratelimit

import (
	"sync/atomic"
	"unsafe"
)

// counter is a uint64 counter that goroutines on different cores seldom
// write on the same cache line: every decision counts, and one shared word
// moved between the cores on every one of them. Add picks one of
// counterCells cells (each on its own line) by the address of the calling
// goroutine's stack, as internal/drivercore.Counter does for the drivers
// (a layer does not import driver internals); Load sums them. The zero
// value is zero.
type counter struct {
	cells [counterCells]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

const (
	counterBits  = 3
	counterCells = 1 << counterBits
)

// Add adds n.
func (c *counter) Add(n uint64) {
	var here byte
	// Stacks are at least 2 KiB: the bits above the 11th tell goroutines
	// apart, and a multiplicative hash spreads them over the top bits.
	h := uint64(uintptr(unsafe.Pointer(&here))>>11) * 0x9e3779b97f4a7c15
	c.cells[h>>(64-counterBits)].n.Add(n)
}

// Load returns the sum of the cells.
func (c *counter) Load() uint64 {
	var sum uint64
	for i := range c.cells {
		sum += c.cells[i].n.Load()
	}
	return sum
}
