package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// TokenLen is the length of a token: 32 random bytes as lowercase hex.
const TokenLen = 64

// idLen is the length of a public session id: 16 random bytes as hex.
const idLen = 32

// newToken returns a fresh token and its raw bytes.
func newToken() (string, [32]byte, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", raw, err
	}
	return hex.EncodeToString(raw[:]), raw, nil
}

func newID() (string, error) {
	var raw [idLen / 2]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw[:]), nil
}

// hexVal maps a byte to its value as a lowercase hex digit, or 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// parseToken decodes a token that is exactly 64 lowercase hex characters.
func parseToken(tok string, raw *[32]byte) bool {
	if len(tok) != TokenLen {
		return false
	}
	bad := byte(0)
	for i := range 32 {
		hi, lo := hexVal[tok[2*i]], hexVal[tok[2*i+1]]
		bad |= hi | lo
		raw[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

func lowerHex(c byte) (byte, bool) {
	v := hexVal[c]
	return v, v != 0xff
}

// validID reports whether id has the shape of a public session id.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if _, ok := lowerHex(id[i]); !ok {
			return false
		}
	}
	return true
}

// hasher computes token HMACs under one secret with pooled hash states, so
// that a validation allocates nothing for its HMAC.
type hasher struct {
	pool sync.Pool
}

type hmacState struct {
	h   hash.Hash
	in  [32]byte // the token, copied so that the caller's array does not escape
	sum [sha256.Size]byte
}

func newHasher(secret []byte) *hasher {
	key := append([]byte(nil), secret...)
	return &hasher{pool: sync.Pool{New: func() any { return &hmacState{h: hmac.New(sha256.New, key)} }}}
}

// sum writes the hex HMAC of raw into out.
func (h *hasher) sum(raw *[32]byte, out *[64]byte) {
	st := h.pool.Get().(*hmacState)
	st.h.Reset()
	st.in = *raw
	st.h.Write(st.in[:])
	st.h.Sum(st.sum[:0])
	hex.Encode(out[:], st.sum[:])
	h.pool.Put(st)
}
