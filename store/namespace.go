package store

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
