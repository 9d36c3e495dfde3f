package cache

import (
	"context"
	"sync"
)

// flightGroup coalesces concurrent work on one key inside a process (as
// golang.org/x/sync/singleflight does), but every caller waits only until
// its own context ends: the work runs on its own goroutine with a context
// of its own, so a caller whose deadline passes leaves without cancelling
// the others.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done   chan struct{}
	val    any
	loaded bool // the work called the loader itself
	err    error
}

// do runs fn once for concurrent callers with the same key. leader reports
// whether this caller started the work.
func (g *flightGroup) do(ctx context.Context, key string, fn func() (any, bool, error)) (*flight, bool, error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	f, ok := g.m[key]
	leader := !ok
	if leader {
		f = &flight{done: make(chan struct{})}
		g.m[key] = f
		go func() {
			defer func() {
				g.mu.Lock()
				delete(g.m, key)
				g.mu.Unlock()
				close(f.done)
			}()
			f.val, f.loaded, f.err = fn()
		}()
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f, leader, nil
	case <-ctx.Done():
		return nil, leader, ctx.Err()
	}
}

// try starts fn for key unless work for key is already running, and does
// not wait for it.
func (g *flightGroup) try(key string, fn func()) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	if _, ok := g.m[key]; ok {
		g.mu.Unlock()
		return
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	g.mu.Unlock()
	go func() {
		defer func() {
			g.mu.Lock()
			delete(g.m, key)
			g.mu.Unlock()
			close(f.done)
		}()
		fn()
	}()
}
