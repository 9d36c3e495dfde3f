package memstore

import (
	"context"

	"github.com/karat-go/karat/store"
)

var _ store.UsageReporter = (*Store)(nil)

// Usage implements store.UsageReporter with the store's own accounting: the
// keys it holds and the bytes it accounts for them (as MaxBytes counts).
func (s *Store) Usage(ctx context.Context) (store.Usage, error) {
	if err := s.Ping(ctx); err != nil {
		return store.Usage{}, err
	}
	return store.Usage{Keys: s.keys.Load(), Bytes: s.bytes.Load()}, nil
}
