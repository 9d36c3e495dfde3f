package rueidisstore

import "github.com/karat-go/karat/store"

// RecordedWrites returns how many keys s's read-your-writes record holds.
func RecordedWrites(s store.Store) int { return s.(*CachedStore).writes.size() }

// SetMaxShardKeys lowers the bound of a record shard until restore is called.
func SetMaxShardKeys(n int) (restore func()) {
	old := maxShardKeys
	maxShardKeys = n
	return func() { maxShardKeys = old }
}
