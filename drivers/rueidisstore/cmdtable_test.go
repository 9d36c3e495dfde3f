package rueidisstore_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

// TestCachedReadsManyKeys reads more keys than the store keeps pinned
// commands for (8,192), from several goroutines at once, so that keys share
// table slots and take them over from each other: every read, hit or miss,
// answers its own key's value. A second store writes the values, so that
// the reads are hits once the cache is filled.
func TestCachedReadsManyKeys(t *testing.T) {
	srv := redistest.Single(t)
	r, w := cachedStore(t, srv.Addr), cachedStore(t, srv.Addr)
	ctx := context.Background()
	key := keyer(t)
	const n = 12000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = key(strconv.Itoa(i))
		require.NoError(t, w.Set(ctx, keys[i], []byte("v"+strconv.Itoa(i)), 0))
	}
	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for g := range readers {
		wg.Go(func() {
			for round := range 3 {
				for j := range keys {
					i := (j*7 + g*1013 + round*331) % n
					v, err := r.GetCached(ctx, keys[i], store.MaxTTL)
					if err != nil {
						errs <- err
						return
					}
					if want := "v" + strconv.Itoa(i); string(v) != want {
						errs <- &mismatch{key: keys[i], got: string(v), want: want}
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := r.Stats()
	require.NotZero(t, st.CacheHits, "later rounds hit the cache")
}

type mismatch struct{ key, got, want string }

func (m *mismatch) Error() string { return m.key + ": got " + m.got + ", want " + m.want }
