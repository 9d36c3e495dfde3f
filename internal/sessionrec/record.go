// Package sessionrec holds what the session layer keeps in the store: the
// encoding of a session record and of a token pointer, and the store Scripts
// that change them. It is internal so that the session package and the
// conformance suite (which proves each script's Lua and Go bodies equal with
// CheckScript) share one definition without exporting it to users.
//
// # Encoding
//
// A record is a string key: a list of fields, each written as its length in
// decimal, ':' and its bytes ("2:s1" + "32:<id>" + ...). That is compact,
// binary-safe (user ids and app data may hold any byte), decoded in Go
// without copying (fields are substrings of the value) and parsed in Lua with
// string.find and string.sub alone (no cjson or cmsgpack, which gopher-lua
// lacks). Numbers are base-10 integers: times and durations in milliseconds
// since the Unix epoch, which Lua 5.1's tostring prints exactly up to 14
// digits (the year 5138).
package sessionrec

import (
	"strconv"
)

// Magic is the first field of every record: the format's version.
const Magic = "s1"

// Field positions in a record (0-based; Lua adds one).
const (
	fMagic = iota
	fID
	fUser
	fTenant
	fCur
	fPrev
	fPrevUntil
	fVersion
	fCreated
	fLastSeen
	fIdle
	fAbs
	fDevice
	fUserAgent
	fIP
	fData
	nFields
)

// Record is a decoded session record. Its strings are substrings of the
// value it was decoded from.
type Record struct {
	ID     string // public session id, 32 hex characters
	User   string
	Tenant string
	// Cur is the hex HMAC of the current token; Prev that of the token it
	// replaced, valid until PrevUntil (ms) ("" and 0 when none).
	Cur, Prev string
	PrevUntil int64
	Version   int64 // bumped by every Update
	Created   int64 // ms since the epoch
	LastSeen  int64 // ms since the epoch: the last recorded activity
	Idle      int64 // idle timeout, ms
	Abs       int64 // absolute deadline, ms since the epoch
	Device    string
	UserAgent string
	IP        string
	Data      string // the app's data, encoded by the session codec
}

// Deadline is when the session ends: at its idle deadline or its absolute
// one, whichever comes first (ms since the epoch).
func (r *Record) Deadline() int64 { return min(r.LastSeen+r.Idle, r.Abs) }

// Append appends the encoding of r to dst.
func (r *Record) Append(dst []byte) []byte {
	dst = appendField(dst, Magic)
	dst = appendField(dst, r.ID)
	dst = appendField(dst, r.User)
	dst = appendField(dst, r.Tenant)
	dst = appendField(dst, r.Cur)
	dst = appendField(dst, r.Prev)
	dst = appendInt(dst, r.PrevUntil)
	dst = appendInt(dst, r.Version)
	dst = appendInt(dst, r.Created)
	dst = appendInt(dst, r.LastSeen)
	dst = appendInt(dst, r.Idle)
	dst = appendInt(dst, r.Abs)
	dst = appendField(dst, r.Device)
	dst = appendField(dst, r.UserAgent)
	dst = appendField(dst, r.IP)
	dst = appendField(dst, r.Data)
	return dst
}

// Encode returns the encoding of r.
func (r *Record) Encode() string { return string(r.Append(nil)) }

func appendField(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendInt(dst []byte, n int64) []byte {
	var b [20]byte
	return appendField(dst, string(strconv.AppendInt(b[:0], n, 10)))
}

// Decode parses a record. It reports false for anything that is not a
// record of this format.
func Decode(s string) (Record, bool) {
	var f [nFields]string
	n, ok := split(s, f[:])
	if !ok || n != nFields || f[fMagic] != Magic {
		return Record{}, false
	}
	r := Record{ID: f[fID], User: f[fUser], Tenant: f[fTenant], Cur: f[fCur], Prev: f[fPrev],
		Device: f[fDevice], UserAgent: f[fUserAgent], IP: f[fIP], Data: f[fData]}
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	r.PrevUntil, ok1 = parseInt(f[fPrevUntil])
	r.Version, ok2 = parseInt(f[fVersion])
	r.Created, ok3 = parseInt(f[fCreated])
	r.LastSeen, ok4 = parseInt(f[fLastSeen])
	r.Idle, ok5 = parseInt(f[fIdle])
	r.Abs, ok6 = parseInt(f[fAbs])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return Record{}, false
	}
	return r, true
}

// split cuts s into its fields, up to len(f); it reports false when s is
// malformed or has more fields than f holds.
func split(s string, f []string) (int, bool) {
	n := 0
	for pos := 0; pos < len(s); {
		l := 0
		i := pos
		for ; i < len(s) && s[i] != ':'; i++ {
			c := s[i]
			if c < '0' || c > '9' || l > len(s) {
				return 0, false
			}
			l = l*10 + int(c-'0')
		}
		if i == pos || i == len(s) || i+1+l > len(s) || n == len(f) {
			return 0, false
		}
		f[n] = s[i+1 : i+1+l]
		n++
		pos = i + 1 + l
	}
	return n, true
}

// parseInt parses a base-10 int64 as strconv.FormatInt writes it.
func parseInt(s string) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// Pointer is what the key named by a token's HMAC holds: the session id and
// the user, which together name the record (the user picks its shard).
type Pointer struct {
	ID   string
	User string
}

// Append appends the encoding of p to dst.
func (p Pointer) Append(dst []byte) []byte {
	dst = appendField(dst, p.ID)
	return appendField(dst, p.User)
}

// DecodePointer parses a pointer value.
func DecodePointer(s string) (Pointer, bool) {
	var f [2]string
	n, ok := split(s, f[:])
	if !ok || n != 2 {
		return Pointer{}, false
	}
	return Pointer{ID: f[0], User: f[1]}, true
}

// LiveValue is the value of a session's field in its shard's live index: its
// deadline (ms) and its user, so that Stats counts live sessions and distinct
// users in one pass.
func LiveValue(deadline int64, user string) string {
	return strconv.FormatInt(deadline, 10) + ":" + user
}

// SplitLive parses a live index value.
func SplitLive(v string) (deadline int64, user string, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == ':' {
			d, ok := parseInt(v[:i])
			return d, v[i+1:], ok
		}
	}
	return 0, "", false
}
