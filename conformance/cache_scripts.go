package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

func setup(steps ...func(ctx context.Context, s store.Store, keys []string) error) func(context.Context, store.Store, []string) error {
	return func(ctx context.Context, s store.Store, keys []string) error {
		for _, step := range steps {
			if err := step(ctx, s, keys); err != nil {
				return err
			}
		}
		return nil
	}
}

// testCacheScripts proves that the Lua and Go bodies of the cache's
// scripts agree, on every path.
func testCacheScripts(e *env) {
	fillKeys := []string{"entry", "lease", "gen", "tag"}
	lease := setString("tok", 10*time.Second, 1)
	oldEntry := setString("old entry", time.Hour, 0)
	gen3 := setString("3", 0, 2)
	e.t.Run("Fill", func(t *testing.T) {
		CheckScript(t, e.h, cache.FillScript, []ScriptCase{
			{Name: "stores", Keys: fillKeys, Args: []string{"tok", "new entry", "60000", "0", "0"}, Setup: lease},
			{Name: "stores-over-old", Keys: fillKeys, Args: []string{"tok", "new entry", "1500", "3", "0"}, Setup: setup(lease, oldEntry, gen3)},
			{Name: "lease-missing", Keys: fillKeys, Args: []string{"tok", "new entry", "60000", "0", "0"}, Setup: oldEntry},
			{Name: "lease-taken", Keys: fillKeys, Args: []string{"mine", "new entry", "60000", "0", "0"}, Setup: setup(lease, oldEntry)},
			{Name: "generation-moved", Keys: fillKeys, Args: []string{"tok", "new entry", "60000", "2", "0"}, Setup: setup(lease, gen3)},
			{Name: "tag-generation-moved", Keys: fillKeys, Args: []string{"tok", "new entry", "60000", "3", "0"},
				Setup: setup(lease, gen3, setString("1", 0, 3))},
			{Name: "bad-ttl-writes-nothing", Keys: fillKeys, Args: []string{"tok", "new entry", "0", "0", "0"}, Setup: lease},
			{Name: "wrong-type-generation-writes-nothing", Keys: fillKeys, Args: []string{"tok", "new entry", "60000", "0", "0"},
				Setup: setup(lease, func(ctx context.Context, s store.Store, keys []string) error {
					return s.HSet(ctx, keys[3], map[string][]byte{"f": []byte("x")})
				})},
		})
	})
	e.t.Run("Acquire", func(t *testing.T) {
		CheckScript(t, e.h, cache.AcquireScript, []ScriptCase{
			{Name: "wins-empty", Keys: fillKeys, Args: []string{"tok", "10000"}},
			{Name: "wins-with-entry-and-generations", Keys: fillKeys, Args: []string{"tok", "10000"}, Setup: setup(oldEntry, gen3)},
			{Name: "lease-held", Keys: fillKeys, Args: []string{"mine", "10000"}, Setup: setup(lease, oldEntry, setString("7", 0, 3))},
			{Name: "no-generations", Keys: []string{"entry", "lease"}, Args: []string{"tok", "10000"}},
			{Name: "bad-ttl-writes-nothing", Keys: fillKeys, Args: []string{"tok", "0"}},
			{Name: "wrong-type-entry-writes-nothing", Keys: fillKeys, Args: []string{"tok", "10000"},
				Setup: func(ctx context.Context, s store.Store, keys []string) error {
					return s.HSet(ctx, keys[0], map[string][]byte{"f": []byte("x")})
				}},
		})
	})
	e.t.Run("Set", func(t *testing.T) {
		CheckScript(t, e.h, cache.SetScript, []ScriptCase{
			{Name: "fresh", Keys: []string{"entry", "lease"}, Args: []string{"v", "60000"}},
			{Name: "over-entry-and-lease", Keys: []string{"entry", "lease"}, Args: []string{"v", "1500"}, Setup: setup(lease, oldEntry)},
			{Name: "bad-ttl-writes-nothing", Keys: []string{"entry", "lease"}, Args: []string{"v", "-5"}, Setup: lease},
		})
	})
	e.t.Run("SetMany", func(t *testing.T) {
		CheckScript(t, e.h, cache.SetManyScript, []ScriptCase{
			{Name: "two", Keys: []string{"e1", "e2", "l1", "l2"}, Args: []string{"a", "60000", "b", "2500"},
				Setup: setString("tok", 10*time.Second, 3)},
			{Name: "none", Keys: nil, Args: nil},
			{Name: "bad-ttl-writes-nothing", Keys: []string{"e1", "e2", "l1", "l2"}, Args: []string{"a", "60000", "b", "x"}},
			{Name: "odd-keys", Keys: []string{"e1", "e2", "l1"}, Args: []string{"a", "60000"}},
		})
	})
	e.t.Run("Release", func(t *testing.T) {
		CheckScript(t, e.h, cache.ReleaseScript, []ScriptCase{
			{Name: "mine", Keys: []string{"lease"}, Args: []string{"tok"}, Setup: setString("tok", 10*time.Second, 0)},
			{Name: "not-mine", Keys: []string{"lease"}, Args: []string{"other"}, Setup: setString("tok", 10*time.Second, 0)},
			{Name: "missing", Keys: []string{"lease"}, Args: []string{"tok"}},
		})
	})
}
