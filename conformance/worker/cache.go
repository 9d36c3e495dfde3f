package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/store"
)

func init() { register("cache-stampede", cacheStampede) }

// cacheStampede: args NAMESPACE TENANT KEY GOROUTINES. GOROUTINES
// goroutines call GetOrLoad on one key of a cache (policy "stampede") at
// once, with a 200 ms loader returning a value naming this process. The
// result is "LOADS VALUE": how many times this process loaded, and the one
// value every goroutine got.
func cacheStampede(ctx context.Context, s store.Store, args []string) (string, error) {
	if len(args) != 4 {
		return "", fmt.Errorf("cache-stampede wants NAMESPACE TENANT KEY GOROUTINES, got %q", args)
	}
	ns, err := store.NewNamespace(args[0])
	if err != nil {
		return "", err
	}
	g, err := strconv.Atoi(args[3])
	if err != nil {
		return "", fmt.Errorf("cache-stampede: bad count %q", args[3])
	}
	c, err := cache.New(s, cache.Policy{Name: "stampede", TTL: time.Hour}, &cache.Options[string]{Namespace: ns})
	if err != nil {
		return "", err
	}
	var loads atomic.Int64
	me := "pid-" + strconv.Itoa(os.Getpid())
	load := func(ctx context.Context) (string, error) {
		loads.Add(1)
		timer := time.NewTimer(200 * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
			return me, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	values := map[string]int{}
	var firstErr error
	for range g {
		wg.Go(func() {
			v, err := c.GetOrLoad(ctx, args[1], args[2], load)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			values[v]++
		})
	}
	wg.Wait()
	if firstErr != nil {
		return "", firstErr
	}
	if len(values) != 1 {
		return "", fmt.Errorf("goroutines got different values: %v", values)
	}
	for v := range values {
		return strconv.FormatInt(loads.Load(), 10) + " " + v, nil
	}
	return "", nil
}
