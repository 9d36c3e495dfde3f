package store

import (
	"math/rand/v2"
	"testing"
)

// crc16Bitwise is the textbook CRC-16/XMODEM, one bit at a time.
func crc16Bitwise(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// TestCRC16SlicingBy4: the four-bytes-at-a-time CRC equals the textbook
// one on every length from 0 to 64 and on random bytes, and gives Redis's
// published check value ("123456789" → 0x31C3).
func TestCRC16SlicingBy4(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 65 {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			if got, want := crc16(string(b)), crc16Bitwise(string(b)); got != want {
				t.Fatalf("crc16(%x) = %#x, want %#x", b, got, want)
			}
		}
	}
}
