package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/karat-go/karat/store"
)

// ErrNoScanner: Clear's deletion and InvalidatePattern need a store with
// the store.Scanner capability.
var ErrNoScanner = fmt.Errorf("karat/cache: the store cannot scan keys: %w", errors.ErrUnsupported)

// Clear invalidates every entry of tenant (as InvalidateTenant, in every
// policy under the namespace) and then deletes the tenant's entries, leases
// and counters from the store, returning how many keys it deleted. It
// touches no other tenant's keys and nothing outside the namespace; it never
// flushes. The generation keys stay (deleting them could bring old entries
// back). Without a Scanner it only invalidates and returns ErrNoScanner.
func (c *Cache[T]) Clear(ctx context.Context, tenant string) (int64, error) {
	if err := c.InvalidateTenant(ctx, tenant); err != nil {
		return 0, err
	}
	sc, ok := store.Capability[store.Scanner](c.s)
	if !ok {
		return 0, ErrNoScanner
	}
	tag, err := c.scopeTag(tenant)
	if err != nil {
		return 0, err
	}
	// Every key of the scope is ns:{tag}:kind:...; the prefix ends at the
	// tag, so it also matches ns:{tag}: of no other scope (the encoded tag
	// cannot contain '}').
	probe, err := c.ns.TaggedKey(tag, "x")
	if err != nil {
		return 0, err
	}
	prefix := strings.TrimSuffix(probe, "x")
	var n int64
	err = sc.Scan(ctx, prefix, func(batch []string) error {
		var del []string
		for _, k := range batch {
			kind, _, _ := strings.Cut(k[len(prefix):], ":")
			switch kind {
			case "e", "l", "c":
				del = append(del, k)
			}
		}
		if len(del) == 0 {
			return nil
		}
		d, err := c.s.Delete(ctx, del...) // one tag: one slot
		n += d
		return err
	})
	c.local.dropTenant(tenant)
	return n, err
}

// InvalidatePattern deletes the entries of this cache's policy, in every
// tenant, whose key matches pattern, and returns how many it deleted. The
// pattern is matched against the key as the application gave it (not the
// encoded store key): '*' matches any run of bytes, '?' any one byte, '\'
// escapes the next byte. It scans the whole namespace on every master of a
// cluster (store.Scanner), so it is for maintenance, not for a request path:
// use InvalidateTenant or InvalidateTag there.
func (c *Cache[T]) InvalidatePattern(ctx context.Context, pattern string) (int64, error) {
	sc, ok := store.Capability[store.Scanner](c.s)
	if !ok {
		return 0, ErrNoScanner
	}
	prefix := c.ns.Prefix()
	var n int64
	err := sc.Scan(ctx, prefix, func(batch []string) error {
		bySlot := map[int][]string{}
		for _, k := range batch {
			tagged, tag, parts, err := store.SplitKey(k[len(prefix):])
			if err != nil || !tagged || len(parts) != 3 || parts[0] != "e" || parts[1] != c.p.Name {
				continue
			}
			if (tag == "g") != c.p.Global || !globMatch(pattern, parts[2]) {
				continue
			}
			lease, err := c.ns.TaggedKey(tag, "l", c.p.Name, parts[2])
			if err != nil {
				continue
			}
			s := store.Slot(k)
			bySlot[s] = append(bySlot[s], k, lease)
		}
		for _, keys := range bySlot {
			d, err := c.s.Delete(ctx, keys...)
			if err != nil {
				return err
			}
			n += d
		}
		return nil
	})
	c.local.dropAll()
	return n, err
}

// globMatch matches s against a pattern of '*', '?' and '\'-escaped bytes.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			case '\\':
				if px+1 < len(pattern) && pattern[px+1] == s[sx] {
					px += 2
					sx++
					continue
				}
			default:
				if c == s[sx] {
					px++
					sx++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		px, sx = starP+1, starS
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
