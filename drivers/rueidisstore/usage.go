package rueidisstore

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/karat-go/karat/internal/redisdrv"
	"github.com/karat-go/karat/store"
)

var _ store.UsageReporter = (*Store)(nil)

// Usage implements store.UsageReporter with DBSIZE and INFO memory, summed
// over every master of a cluster. A server that refuses INFO memory reports
// Bytes 0.
func (s *Store) Usage(ctx context.Context) (store.Usage, error) {
	if err := s.g.Begin(ctx); err != nil {
		return store.Usage{}, err
	}
	nodes := []rueidis.Client{s.c}
	if s.c.Mode() == rueidis.ClientModeCluster {
		var err error
		if nodes, err = s.masters(ctx); err != nil {
			return store.Usage{}, s.g.End(err)
		}
	}
	var u store.Usage
	for _, n := range nodes {
		resp := n.Do(ctx, n.B().Dbsize().Build())
		keys, err := resp.AsInt64()
		if err != nil {
			return store.Usage{}, s.g.End(mapErr(ctx, resp, err, false))
		}
		u.Keys += keys
		resp = n.Do(ctx, n.B().Info().Section("memory").Build())
		info, err := resp.ToString()
		if err != nil {
			if _, reply := rueidis.IsRedisErr(err); reply {
				continue
			}
			return store.Usage{}, s.g.End(mapErr(ctx, resp, err, false))
		}
		mem, _ := redisdrv.UsedMemory(info)
		u.Bytes += mem
	}
	return u, s.g.End(nil)
}
