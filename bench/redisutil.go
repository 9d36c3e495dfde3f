package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// newGoRedis returns a go-redis client with the library's defaults (a pool
// of 10 connections per CPU), as a peer's README would build it.
func newGoRedis(env *Env) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: env.DB})
}

// newRueidis returns a rueidis client with its defaults (auto-pipelining;
// client-side caching unless disableCache).
func newRueidis(env *Env, disableCache bool) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{env.RedisAddr},
		SelectDB:     env.DB,
		DisableCache: disableCache,
	})
}

// keyNames returns n keys under the run's prefix for one scenario.
func keyNames(env *Env, scenario string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = env.Prefix + ":" + scenario + ":" + strconv.Itoa(i)
	}
	return ks
}

// fill calls fn(i) for i in [0, n) from 32 goroutines and returns the first
// error.
func fill(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(32, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("item %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// cleanupKeys deletes every key under the run's prefix (with --redis, the
// server is not ours: leave nothing behind, flush nothing).
func cleanupKeys(env *Env) {
	c := newGoRedis(env)
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, escapeGlob(env.Prefix)+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// info returns one field of INFO section.
func info(env *Env, section, field string) (string, error) {
	c := newGoRedis(env)
	defer c.Close()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

func redisVersion(env *Env) string {
	v, err := info(env, "server", "redis_version")
	if err != nil {
		return "redis-server ?"
	}
	return "redis-server " + v
}

// usedMemory is INFO memory's used_memory, in bytes.
func usedMemory(env *Env) (int64, error) {
	v, err := info(env, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// commandsProcessed is INFO stats' total_commands_processed, or -1.
func commandsProcessed(c *redis.Client) int64 {
	s, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
