package cache

import (
	"bytes"
	"encoding/json"
)

// Codec turns values into bytes and back. It must be safe for concurrent use.
type Codec[T any] interface {
	// Encode returns the bytes to store for v.
	Encode(v T) ([]byte, error)
	// Decode returns the value of bytes Encode made. b is the cache's own:
	// a Decode that keeps it must copy it.
	Decode(b []byte) (T, error)
}

// JSON returns the default codec: encoding/json.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Bytes returns the raw codec for a Cache[[]byte]: values are stored as
// they are (and copied, so the caller may reuse its slice).
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error) { return bytes.Clone(v), nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) {
	if b == nil {
		b = []byte{}
	}
	return bytes.Clone(b), nil
}
