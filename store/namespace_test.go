package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/store"
)

func TestNamespace(t *testing.T) {
	ns, err := store.NewNamespace("karat", "sess{ion}*")
	require.NoError(t, err)
	assert.Equal(t, "karat:sess%7Bion%7D%2A", ns.String(), "braces and globs in a namespace are encoded")

	k, err := ns.TaggedKey("user:1", "s", "abc")
	require.NoError(t, err)
	assert.Equal(t, "karat:sess%7Bion%7D%2A:{user%3A1}:s:abc", k)
	assert.True(t, strings.HasPrefix(k, ns.Prefix()))
	bare, err := store.TaggedKey("user:1", "other")
	require.NoError(t, err)
	assert.Equal(t, store.Slot(bare), store.Slot(k), "the tag, not the namespace, picks the slot")

	other, err := store.NewNamespace("karat", "sess")
	require.NoError(t, err)
	k2, err := other.Key("x")
	require.NoError(t, err)
	assert.False(t, strings.HasPrefix(k2, ns.Prefix()))

	sub, err := ns.Sub("c")
	require.NoError(t, err)
	assert.Equal(t, ns.Prefix()+"c", sub.String())

	_, err = store.NewNamespace()
	assert.ErrorIs(t, err, store.ErrInvalidKey)
	_, err = ns.TaggedKey("")
	assert.ErrorIs(t, err, store.ErrInvalidKey)
	_, err = ns.Key(strings.Repeat("x", store.MaxPartLen+1))
	assert.ErrorIs(t, err, store.ErrInvalidKey)

	var zero store.Namespace
	assert.True(t, zero.IsZero())
	k3, err := zero.Key("a")
	require.NoError(t, err)
	assert.Equal(t, "a", k3)
}
