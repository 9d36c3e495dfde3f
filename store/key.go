package store

import (
	"fmt"
	"strings"
)

// Limits on keys.
const (
	// MaxPartLen is the largest part, in bytes before encoding, that Key and
	// TaggedKey accept. Ids up to 16 KiB (a 10 KB tenant id, say) are
	// encoded; a larger part is refused with ErrInvalidKey rather than
	// truncated or hashed, so two ids never meet.
	MaxPartLen = 16 << 10
	// MaxKeyLen is the longest key, in bytes, that any store operation
	// accepts (and that Key produces).
	MaxKeyLen = 64 << 10
)

const hexUpper = "0123456789ABCDEF"

// safeByte reports whether b passes through the encoding unchanged: ASCII
// letters, digits and "-._~" (RFC 3986 unreserved characters). Everything else
// becomes %XX, so encoded parts never hold ':', '{', '}', glob characters
// (*?[]\), spaces, control characters or non-ASCII bytes.
func safeByte(b byte) bool { return safeTab[b] }

var safeTab = func() (t [256]bool) {
	for b := range t {
		c := byte(b)
		t[b] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
	}
	return t
}()

// encodePart writes p encoded, copying the runs of bytes that need no
// encoding whole.
func encodePart(sb *strings.Builder, p string) {
	run := 0 // start of the current run of safe bytes
	for i := 0; i < len(p); i++ {
		b := p[i]
		if safeTab[b] {
			continue
		}
		sb.WriteString(p[run:i])
		sb.Write([]byte{'%', hexUpper[b>>4], hexUpper[b&15]})
		run = i + 1
	}
	sb.WriteString(p[run:])
}

// appendEncoded is encodePart for a byte slice.
func appendEncoded(dst []byte, p string) []byte {
	run := 0
	for i := 0; i < len(p); i++ {
		b := p[i]
		if safeTab[b] {
			continue
		}
		dst = append(dst, p[run:i]...)
		dst = append(dst, '%', hexUpper[b>>4], hexUpper[b&15])
		run = i + 1
	}
	return append(dst, p[run:]...)
}

func encodedLen(p string) int {
	n := len(p)
	for i := 0; i < len(p); i++ {
		if !safeTab[p[i]] {
			n += 2
		}
	}
	return n
}

// Key joins parts into a key with ':' after encoding each part, so that
// untrusted input (tenant ids, user ids, anything with ':', '*', '{', spaces,
// newlines or invalid UTF-8) cannot forge another key, cannot act as a glob
// in SCAN MATCH and cannot pick a cluster slot. The encoding is injective:
// SplitKey gives the parts back. Parts made only of letters, digits and
// "-._~" are unchanged, so Key("karat", "sess") is "karat:sess".
//
// A part longer than MaxPartLen, or a result longer than MaxKeyLen, gives
// ErrInvalidKey. Key with no parts is ErrInvalidKey.
func Key(parts ...string) (string, error) {
	return buildKey("", false, "", parts)
}

// TaggedKey is Key with an explicit Redis Cluster hash tag: the key begins
// with "{" + encoded tag + "}", so every key built with the same tag lands in
// the same slot, whatever its other parts. Put the entity that multi-key
// operations and scripts group by in the tag (a user id for a session and its
// user's index, say). An empty tag is ErrInvalidKey: Redis would ignore it.
func TaggedKey(tag string, parts ...string) (string, error) {
	return buildKey("", true, tag, parts)
}

// buildKey builds the key in one allocation; prefix (an encoded Namespace,
// or "") and ':' come first when prefix is not empty.
func buildKey(prefix string, tagged bool, tag string, parts []string) (string, error) {
	if len(parts) == 0 && !tagged {
		return "", fmt.Errorf("%w: no parts", ErrInvalidKey)
	}
	n := 0
	if tagged {
		if tag == "" {
			// Redis ignores an empty tag ("{}") and hashes the whole key.
			return "", fmt.Errorf("%w: empty hash tag", ErrInvalidKey)
		}
		if len(tag) > MaxPartLen {
			return "", fmt.Errorf("%w: tag of %d bytes exceeds %d", ErrInvalidKey, len(tag), MaxPartLen)
		}
		n += encodedLen(tag) + 2
	}
	for i, p := range parts {
		if len(p) > MaxPartLen {
			return "", fmt.Errorf("%w: part %d of %d bytes exceeds %d", ErrInvalidKey, i, len(p), MaxPartLen)
		}
		n += encodedLen(p) + 1
	}
	if prefix != "" {
		n += len(prefix) + 1
	}
	if n > MaxKeyLen {
		return "", fmt.Errorf("%w: encoded key of %d bytes exceeds %d", ErrInvalidKey, n, MaxKeyLen)
	}
	var sb strings.Builder
	sb.Grow(n)
	if prefix != "" {
		sb.WriteString(prefix)
		sb.WriteByte(':')
	}
	if tagged {
		sb.WriteByte('{')
		encodePart(&sb, tag)
		sb.WriteByte('}')
	}
	for i, p := range parts {
		if i > 0 || tagged {
			sb.WriteByte(':')
		}
		encodePart(&sb, p)
	}
	return sb.String(), nil
}

// SplitKey reverses Key and TaggedKey: it returns whether the key had a tag,
// the tag, and the parts. A string that Key could not have produced gives
// ErrInvalidKey.
func SplitKey(key string) (tagged bool, tag string, parts []string, err error) {
	rest := key
	if strings.HasPrefix(rest, "{") {
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return false, "", nil, fmt.Errorf("%w: unterminated tag", ErrInvalidKey)
		}
		if end == 1 {
			return false, "", nil, fmt.Errorf("%w: empty tag", ErrInvalidKey)
		}
		if tag, err = decodePart(rest[1:end]); err != nil {
			return false, "", nil, err
		}
		tagged = true
		rest = rest[end+1:]
		if rest == "" {
			return true, tag, nil, nil
		}
		if rest[0] != ':' {
			return false, "", nil, fmt.Errorf("%w: no separator after tag", ErrInvalidKey)
		}
		rest = rest[1:]
	}
	for _, enc := range strings.Split(rest, ":") {
		p, err := decodePart(enc)
		if err != nil {
			return false, "", nil, err
		}
		parts = append(parts, p)
	}
	return tagged, tag, parts, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func decodePart(enc string) (string, error) {
	var sb strings.Builder
	sb.Grow(len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		switch {
		case safeByte(c):
			sb.WriteByte(c)
		case c == '%' && i+2 < len(enc):
			hi, ok1 := unhex(enc[i+1])
			lo, ok2 := unhex(enc[i+2])
			b := hi<<4 | lo
			if !ok1 || !ok2 || safeByte(b) {
				return "", fmt.Errorf("%w: bad escape at byte %d", ErrInvalidKey, i)
			}
			sb.WriteByte(b)
			i += 2
		default:
			return "", fmt.Errorf("%w: byte %q at %d is not in Key's alphabet", ErrInvalidKey, c, i)
		}
	}
	return sb.String(), nil
}

// ValidateKey returns ErrInvalidKey for an empty key or one longer than
// MaxKeyLen. Drivers call it on every key they are given.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	return nil
}

// SlotCount is the number of Redis Cluster hash slots.
const SlotCount = 16384

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the bytes between the first '{' and the first '}' after
// it, when there are any), modulo 16384.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % SlotCount)
}

// ValidateKeys checks each key with ValidateKey and that all of them share a
// slot (ErrCrossSlot otherwise). Drivers call it before a multi-key call.
func ValidateKeys(keys []string) error {
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
	}
	if len(keys) < 2 {
		return nil
	}
	first := Slot(keys[0])
	for _, k := range keys[1:] {
		if s := Slot(k); s != first {
			return fmt.Errorf("%w: %s is in slot %d, %s in slot %d", ErrCrossSlot, shortKey(keys[0]), first, shortKey(k), s)
		}
	}
	return nil
}

func shortKey(k string) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q...(%d bytes)", k[:64], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), as Redis
// Cluster uses, four bytes at a time (slicing by 4: every key of every call
// goes through it, to find its slot).
func crc16(s string) uint16 {
	var crc uint16
	for len(s) >= 4 {
		t := crc ^ (uint16(s[0])<<8 | uint16(s[1]))
		crc = crc16by4[3][t>>8] ^ crc16by4[2][t&0xff] ^ crc16by4[1][s[2]] ^ crc16by4[0][s[3]]
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16by4[0][byte(crc>>8)^s[i]]
	}
	return crc
}

// crc16by4[k][b] is the register after feeding byte b into a zero register,
// then k zero bytes; crc16by4[0] is the classic byte table.
var crc16by4 = func() (t [4][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < 4; k++ {
		for i := range t[k] {
			r := t[k-1][i]
			t[k][i] = r<<8 ^ t[0][r>>8]
		}
	}
	return t
}()
