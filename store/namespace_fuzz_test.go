package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/karat-go/karat/store"
)

// This fuzz target was written for issue 12 (reliability); RELIABILITY.md
// lists what it asserts. Its corpus is under testdata/fuzz.

// FuzzNamespaceKey: parts build a key under the namespace or are refused
// with ErrInvalidKey; two part lists one byte apart never build one key; a
// tagged key hashes to its tag's slot.
func FuzzNamespaceKey(f *testing.F) {
	f.Add("tenant", "user", "x", uint8(0))
	f.Add("*", "{", "\n", uint8(1))
	f.Add("\xff\xfe", "a:b", "}{", uint8(2))
	f.Add("", "", "", uint8(3))
	f.Add(strings.Repeat("k", 20000), "a", "b", uint8(4))
	ns := store.MustNamespace("karat", "fuzz")
	f.Fuzz(func(t *testing.T, a, b, c string, flip uint8) {
		parts := []string{a, b, c}
		k, err := ns.Key(parts...)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Fatalf("Key(%q) = %v, want ErrInvalidKey", parts, err)
			}
			return
		}
		if !strings.HasPrefix(k, ns.Prefix()) {
			t.Fatalf("Key(%q) = %q, not under %q", parts, k, ns.Prefix())
		}
		if strings.ContainsAny(k[len(ns.Prefix()):], "{}") && !strings.ContainsAny(a+b+c, "{}") {
			t.Fatalf("Key(%q) = %q: braces from nowhere", parts, k)
		}
		// A tagged key's slot is the tag's, whatever the parts hold.
		tk, err := ns.TaggedKey(a, b, c)
		// TaggedKeyer builds the same key, or fails alike.
		for _, n := range []store.Namespace{ns, {}} {
			want, werr := n.TaggedKey(a, b, c)
			got, gerr := n.TaggedKeyer(b, c).Key(a)
			if got != want || (werr == nil) != (gerr == nil) || gerr != nil && gerr.Error() != werr.Error() {
				t.Fatalf("TaggedKeyer(%q, %q).Key(%q) = %q, %v; TaggedKey gives %q, %v", b, c, a, got, gerr, want, werr)
			}
			buf, aerr := n.TaggedKeyer(b, c).AppendKey([]byte("x"), a)
			if string(buf) != "x"+want || (werr == nil) != (aerr == nil) || aerr != nil && aerr.Error() != werr.Error() {
				t.Fatalf("TaggedKeyer(%q, %q).AppendKey(x, %q) = %q, %v; TaggedKey gives %q, %v", b, c, a, buf, aerr, want, werr)
			}
		}
		if err == nil && store.Slot(tk) != store.Slot("{"+tagOf(t, tk)+"}") {
			t.Fatalf("TaggedKey(%q, ...) = %q: slot not the tag's", a, tk)
		}
		// Injective: another part list, one byte apart, builds another key.
		other := append([]string(nil), parts...)
		i := int(flip) % 3
		other[i] += "\x00"
		if k2, err := ns.Key(other...); err == nil && k2 == k {
			t.Fatalf("Key(%q) and Key(%q) are both %q", parts, other, k)
		}
		other = []string{a + b, c}
		if k2, err := ns.Key(other...); err == nil && k2 == k {
			t.Fatalf("Key(%q) and Key(%q) are both %q", parts, other, k)
		}
	})
}

// tagOf returns the hash tag of key: what is between its first '{' and the
// next '}'.
func tagOf(t *testing.T, key string) string {
	i := strings.IndexByte(key, '{')
	j := strings.IndexByte(key[i+1:], '}')
	if i < 0 || j <= 0 {
		t.Fatalf("tagged key %q has no tag", key)
	}
	return key[i+1 : i+1+j]
}
