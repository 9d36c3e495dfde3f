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

// parseToken decodes a token that is exactly 64 lowercase hex characters.
func parseToken(tok string, raw *[32]byte) bool {
	if len(tok) != TokenLen {
		return false
	}
	for i := 0; i < 32; i++ {
		hi, ok1 := lowerHex(tok[2*i])
		lo, ok2 := lowerHex(tok[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		raw[i] = hi<<4 | lo
	}
	return true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
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
	st.h.Write(raw[:])
	st.h.Sum(st.sum[:0])
	hex.Encode(out[:], st.sum[:])
	h.pool.Put(st)
}
