package goredisstore

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/karat-go/karat/internal/redisdrv"
	"github.com/karat-go/karat/store"
)

var _ store.UsageReporter = (*Store)(nil)

// Usage implements store.UsageReporter with DBSIZE and INFO memory, summed
// over every master of a cluster. A server that refuses INFO memory
// (miniredis) reports Bytes 0.
func (s *Store) Usage(ctx context.Context) (store.Usage, error) {
	if err := s.g.Begin(ctx); err != nil {
		return store.Usage{}, err
	}
	var mu sync.Mutex
	var u store.Usage
	node := func(ctx context.Context, c redis.Cmdable) error {
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		var mem int64
		info, err := c.Info(ctx, "memory").Result()
		var reply redis.Error
		switch {
		case err == nil:
			mem, _ = redisdrv.UsedMemory(info)
		case !errors.As(err, &reply):
			return err
		}
		mu.Lock()
		u.Keys += n
		u.Bytes += mem
		mu.Unlock()
		return nil
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return node(ctx, c) })
	} else {
		err = node(ctx, s.c)
	}
	if err != nil {
		return store.Usage{}, s.g.End(mapErr(ctx, err, false))
	}
	return u, s.g.End(nil)
}
