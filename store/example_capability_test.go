package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// readHot reads a small, hot key the way karat's layers do: through the
// client-side cache when the store has one (rueidis: no round trip on a hit,
// never older than maxStale), from the server otherwise. The code is the
// same for every driver; only the capability decides the path.
func readHot(ctx context.Context, s store.Store, key string) ([]byte, string, error) {
	if cr, ok := store.Capability[store.CachedReader](s); ok {
		v, err := cr.GetCached(ctx, key, time.Second)
		return v, "cached read", err
	}
	v, err := s.Get(ctx, key)
	return v, "plain read", err
}

// Optional capabilities are found with store.Capability, through wrappers,
// never by a type switch on a driver. The memory driver has no client-side
// cache, so the read goes to the store; on a rueidis store from
// drivers.Open("redis://...") the same code takes the cached path.
func ExampleCapability() {
	s := memstore.New(nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "karat:gold-price", []byte("2075.5"), 5*time.Minute); err != nil {
		panic(err)
	}
	v, path, err := readHot(ctx, s, "karat:gold-price")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(v), path)
	fmt.Println(store.Capabilities(s))
	// Output:
	// 2075.5 plain read
	// [int64-update scan stats usage]
}

// bytesOnly is a CachedReader without the string form, as a third-party
// driver (or a wrapper that traces GetCached) may be: it reads from s.
type bytesOnly struct{ s store.Store }

func (b bytesOnly) GetCached(ctx context.Context, key string, _ time.Duration) ([]byte, error) {
	return b.s.Get(ctx, key)
}

// A layer that decodes what it reads, and keeps none of the bytes, asks
// once for the string form of the CachedReader it found: rueidis's answers
// a hit with the cache's own memory (no copy); any other reader is adapted,
// at the cost of the copy GetCached makes anyway.
func ExampleCachedStrings() {
	s := memstore.New(nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "karat:gold-price", []byte("2075.5"), time.Minute); err != nil {
		panic(err)
	}
	var cr store.CachedReader = bytesOnly{s}
	sr := store.CachedStrings(cr) // once, where cr is found
	v, err := sr.GetCachedString(ctx, "karat:gold-price", time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println(v)
	// Output:
	// 2075.5
}
