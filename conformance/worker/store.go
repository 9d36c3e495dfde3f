package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/store"
)

func init() { register("incr", incr) }

// incr: args KEY GOROUTINES EACH. Increments KEY by one GOROUTINES×EACH
// times from GOROUTINES goroutines; the result is the number of errors.
func incr(ctx context.Context, s store.Store, args []string) (string, error) {
	if len(args) != 3 {
		return "", fmt.Errorf("incr wants KEY GOROUTINES EACH, got %q", args)
	}
	g, err1 := strconv.Atoi(args[1])
	each, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("incr: bad counts %q", args[1:])
	}
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range each {
				if _, err := s.IncrBy(ctx, args[0], 1, time.Hour); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return strconv.FormatInt(errs.Load(), 10), nil
}
