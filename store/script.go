package store

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ScriptFunc is the Go body of a Script. It sees only the keys it was given
// (through v) and the store's clock (v.Now()). It must check before it writes:
// a body that returns an error must have written nothing, as its Lua twin,
// which Redis does not roll back. The memory driver discards the writes of a
// body that fails all the same, but that is no excuse: the Lua body would not.
type ScriptFunc func(v ScriptView, keys, args []string) (Value, error)

// Script is an atomic operation with two bodies that must agree: Lua, run by
// Redis drivers, and Go, run by the memory driver. Lua bodies must run on
// Redis 7 and on miniredis's gopher-lua: use redis.call, redis.pcall,
// redis.error_reply, tonumber/tostring, string and table functions; no
// cmsgpack, cjson, bit or struct. Time inside a body is the store's: in Lua,
// redis.call('TIME'); in Go, v.Now(). Use microseconds, which are exact both
// in Lua's doubles and in Go.
//
// Return values follow Redis's Lua-to-RESP conversion: integers (a Lua number
// is truncated toward zero), strings, nil (Lua nil or false), arrays (a Lua
// table stops at its first nil). A Lua true becomes the integer 1. There are
// no floats: return them as strings.
type Script struct {
	name string
	lua  string
	sha  string
	run  ScriptFunc
}

// NewScript returns a script with a name (used in errors and metrics), its Lua
// source, and its Go body. A nil run makes a Lua-only script, which only the
// Redis drivers can run: Run, and so the memory driver's Eval, then fail with
// an error that is errors.ErrUnsupported. Layers must give both bodies.
func NewScript(name, lua string, run ScriptFunc) *Script {
	sum := sha1.Sum([]byte(lua))
	return &Script{name: name, lua: lua, sha: hex.EncodeToString(sum[:]), run: run}
}

// Name returns the script's name.
func (s *Script) Name() string { return s.name }

// Lua returns the Lua source.
func (s *Script) Lua() string { return s.lua }

// SHA1 returns the hex SHA-1 of the Lua source, as EVALSHA wants it.
func (s *Script) SHA1() string { return s.sha }

// Run calls the Go body. Drivers that execute scripts in Go call it with a view
// limited to keys. A script without a Go body gives an error that is
// errors.ErrUnsupported.
func (s *Script) Run(v ScriptView, keys, args []string) (Value, error) {
	if s.run == nil {
		return Value{}, fmt.Errorf("karat/store: script %q has no Go body, so it runs only on Redis: %w", s.name, errors.ErrUnsupported)
	}
	return s.run(v, keys, args)
}

// ScriptView is what a Go script body sees: the Store's data operations on the
// declared keys, without contexts (the body runs atomically and does no I/O),
// and the store's clock. Each method has the semantics of its Store
// namesake. A key the script did not declare gives ErrInvalidKey.
type ScriptView interface {
	// Now is the store's clock, the same for the whole call, truncated to a
	// microsecond (Lua's TIME has that resolution).
	Now() time.Time
	Get(key string) ([]byte, error)
	MGet(keys ...string) ([][]byte, error)
	Set(key string, val []byte, ttl time.Duration) error
	SetNX(key string, val []byte, ttl time.Duration) (bool, error)
	Delete(keys ...string) (int64, error)
	HGet(key, field string) ([]byte, error)
	HSet(key string, fields map[string][]byte) error
	HDel(key string, fields ...string) (int64, error)
	HGetAll(key string) (map[string][]byte, error)
	IncrBy(key string, delta int64, ttl time.Duration) (int64, error)
	Expire(key string, ttl time.Duration) (bool, error)
	TTL(key string) (time.Duration, error)
}

// Kind is the kind of a Value.
type Kind uint8

// The kinds of Value, mirroring what a Lua script can return through RESP.
const (
	KindNil Kind = iota
	KindInt
	KindBytes
	KindArray
)

// Value is a script's result: nil, an int64, bytes, or an array of Values.
type Value struct {
	Kind  Kind
	Int   int64
	Bytes []byte
	Array []Value
}

// NilValue returns the nil Value.
func NilValue() Value { return Value{} }

// IntValue returns an integer Value.
func IntValue(i int64) Value { return Value{Kind: KindInt, Int: i} }

// BytesValue returns a bytes Value; nil b is stored as an empty, non-nil slice.
func BytesValue(b []byte) Value {
	if b == nil {
		b = []byte{}
	}
	return Value{Kind: KindBytes, Bytes: b}
}

// StringValue returns a bytes Value holding s.
func StringValue(s string) Value { return Value{Kind: KindBytes, Bytes: []byte(s)} }

// ArrayValue returns an array Value.
func ArrayValue(vs ...Value) Value {
	if vs == nil {
		vs = []Value{}
	}
	return Value{Kind: KindArray, Array: vs}
}

// BoolValue returns what Lua's true and false become: the integer 1, or nil.
func BoolValue(b bool) Value {
	if b {
		return IntValue(1)
	}
	return NilValue()
}

// Equal reports whether v and w are the same value.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInt:
		return v.Int == w.Int
	case KindBytes:
		return bytes.Equal(v.Bytes, w.Bytes)
	case KindArray:
		if len(v.Array) != len(w.Array) {
			return false
		}
		for i := range v.Array {
			if !v.Array[i].Equal(w.Array[i]) {
				return false
			}
		}
	}
	return true
}

// String formats v for messages: nil, 42, "bytes", [1 "a" nil].
func (v Value) String() string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindBytes:
		return strconv.Quote(string(v.Bytes))
	case KindArray:
		parts := make([]string, len(v.Array))
		for i, e := range v.Array {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return "nil"
}

// AsInt returns the integer of an int Value, or parses a bytes Value.
func (v Value) AsInt() (int64, error) {
	switch v.Kind {
	case KindInt:
		return v.Int, nil
	case KindBytes:
		return strconv.ParseInt(string(v.Bytes), 10, 64)
	}
	return 0, fmt.Errorf("karat/store: value %s is not an integer", v)
}
