package cache

import (
	"encoding/binary"
	"time"
)

// An entry as stored: a fixed header, the generations it was written under,
// then the encoded value.
//
//	[0]      version (1)
//	[1]      flags (flagNegative: a cached "not found", no value)
//	[2:10]   fresh until, Unix microseconds, big endian
//	[10:18]  how long the load took, microseconds (XFetch's delta)
//	[18:20]  number of generations n
//	[20:..]  n generations, int64 big endian: the scope's, then each tag's
//	[..]     the value
const (
	entryVersion = 1
	flagNegative = 1
	headerLen    = 20
)

type entry struct {
	negative   bool
	freshUntil int64 // Unix µs
	delta      int64 // µs
	gens       []int64
	value      []byte
}

func encodeEntry(negative bool, freshUntil time.Time, delta time.Duration, gens []int64, value []byte) []byte {
	b := make([]byte, headerLen+8*len(gens)+len(value))
	b[0] = entryVersion
	if negative {
		b[1] = flagNegative
	}
	binary.BigEndian.PutUint64(b[2:], uint64(freshUntil.UnixMicro()))
	binary.BigEndian.PutUint64(b[10:], uint64(delta.Microseconds()))
	binary.BigEndian.PutUint16(b[18:], uint16(len(gens)))
	off := headerLen
	for _, g := range gens {
		binary.BigEndian.PutUint64(b[off:], uint64(g))
		off += 8
	}
	copy(b[off:], value)
	return b
}

// decodeEntry parses b; ok is false for bytes that are not an entry of this
// version (written by something else, or corrupt): the cache treats them as
// a miss and overwrites them.
func decodeEntry(b []byte) (e entry, ok bool) {
	if len(b) < headerLen || b[0] != entryVersion {
		return entry{}, false
	}
	n := int(binary.BigEndian.Uint16(b[18:]))
	if len(b) < headerLen+8*n {
		return entry{}, false
	}
	e.negative = b[1]&flagNegative != 0
	e.freshUntil = int64(binary.BigEndian.Uint64(b[2:]))
	e.delta = int64(binary.BigEndian.Uint64(b[10:]))
	e.gens = make([]int64, n)
	off := headerLen
	for i := range e.gens {
		e.gens[i] = int64(binary.BigEndian.Uint64(b[off:]))
		off += 8
	}
	e.value = b[off:]
	return e, true
}

// current reports whether e was written under generations at least as new
// as gens (generations only grow, so a newer one in e means the entry was
// written after a bump this reader has not seen yet).
func (e entry) current(gens []int64) bool {
	if len(e.gens) != len(gens) {
		return false
	}
	for i, g := range gens {
		if e.gens[i] < g {
			return false
		}
	}
	return true
}
