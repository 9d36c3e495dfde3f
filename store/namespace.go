package store

import (
	"fmt"
	"strings"
)

// Namespace is an encoded prefix that a layer puts before every key it
// writes, so that one Redis can hold several applications, several layers
// and test runs side by side, and so that everything under a namespace can be
// found with one Scanner prefix. It never holds '{' or '}', so the hash tag
// of a key built under it is the tag the key names, not the namespace.
type Namespace struct {
	enc string
}

// NewNamespace encodes parts as Key does ("karat", "cache" gives
// "karat:cache"). No parts, or a part Key refuses, is ErrInvalidKey.
func NewNamespace(parts ...string) (Namespace, error) {
	k, err := Key(parts...)
	if err != nil {
		return Namespace{}, err
	}
	return Namespace{enc: k}, nil
}

// MustNamespace is NewNamespace for constant parts; it panics on an error.
func MustNamespace(parts ...string) Namespace {
	ns, err := NewNamespace(parts...)
	if err != nil {
		panic(err)
	}
	return ns
}

// String returns the encoded namespace.
func (n Namespace) String() string { return n.enc }

// IsZero reports whether n is the zero Namespace (no prefix).
func (n Namespace) IsZero() bool { return n.enc == "" }

// Prefix returns what every key under n begins with: the namespace and ':'.
// Pass it to Scanner.Scan.
func (n Namespace) Prefix() string { return n.enc + ":" }

// Sub returns the namespace n extended by parts.
func (n Namespace) Sub(parts ...string) (Namespace, error) {
	k, err := n.Key(parts...)
	if err != nil {
		return Namespace{}, err
	}
	return Namespace{enc: k}, nil
}

// Key is the Key of parts under n, built in one allocation.
func (n Namespace) Key(parts ...string) (string, error) {
	return buildKey(n.enc, false, "", parts)
}

// TaggedKey is the TaggedKey of tag and parts under n: keys built with the
// same tag share a cluster slot, whatever the namespace.
func (n Namespace) TaggedKey(tag string, parts ...string) (string, error) {
	return buildKey(n.enc, true, tag, parts)
}

// TaggedKeyer builds the keys n.TaggedKey(tag, parts...) builds, for parts
// fixed once, for any tag: the parts are encoded once, and each key costs
// one pass over the tag and one allocation. It is for hot paths that build
// a key per call (a rate-limit decision); its zero value builds nothing.
type TaggedKeyer struct {
	prefix, suffix string // "ns:{" and "}:part:part"
	err            error  // the parts' error, returned by every Key
}

// TaggedKeyer returns the builder of n.TaggedKey(tag, parts...).
func (n Namespace) TaggedKeyer(parts ...string) TaggedKeyer {
	// The parts are checked and encoded as buildKey does, with a tag that
	// encodes to itself.
	k, err := buildKey(n.enc, true, "t", parts)
	if err != nil {
		return TaggedKeyer{err: err}
	}
	i := len(n.enc) + 1 // "{" follows the namespace and ':'
	if n.enc == "" {
		i = 0
	}
	return TaggedKeyer{prefix: k[:i+1], suffix: k[i+2:]}
}

// AppendKey appends n.TaggedKey(tag, parts...) to dst, or returns dst and
// the error: with a buffer the caller reuses, a key costs no allocation.
func (k TaggedKeyer) AppendKey(dst []byte, tag string) ([]byte, error) {
	if tag == "" || len(tag) > MaxPartLen {
		_, err := buildKey("", true, tag, nil)
		return dst, err
	}
	if k.err != nil {
		return dst, k.err
	}
	if k.prefix == "" {
		return dst, fmt.Errorf("%w: the zero TaggedKeyer", ErrInvalidKey)
	}
	start := len(dst)
	dst = append(dst, k.prefix...)
	dst = appendEncoded(dst, tag) // one pass; the length is checked after
	dst = append(dst, k.suffix...)
	if n := len(dst) - start; n > MaxKeyLen {
		return dst[:start], fmt.Errorf("%w: encoded key of %d bytes exceeds %d", ErrInvalidKey, n, MaxKeyLen)
	}
	return dst, nil
}

// Key returns n.TaggedKey(tag, parts...), or its error.
func (k TaggedKeyer) Key(tag string) (string, error) {
	if tag == "" || len(tag) > MaxPartLen {
		return buildKey("", true, tag, nil) // its error, as TaggedKey checks the tag first
	}
	if k.err != nil {
		return "", k.err
	}
	if k.prefix == "" {
		return "", fmt.Errorf("%w: the zero TaggedKeyer", ErrInvalidKey)
	}
	enc := encodedLen(tag)
	if n := len(k.prefix) + enc + len(k.suffix); n > MaxKeyLen {
		return "", fmt.Errorf("%w: encoded key of %d bytes exceeds %d", ErrInvalidKey, n, MaxKeyLen)
	}
	if enc == len(tag) {
		return k.prefix + tag + k.suffix, nil
	}
	var sb strings.Builder
	sb.Grow(len(k.prefix) + enc + len(k.suffix))
	sb.WriteString(k.prefix)
	encodePart(&sb, tag)
	sb.WriteString(k.suffix)
	return sb.String(), nil
}
