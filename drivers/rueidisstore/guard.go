package rueidisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// guardWindow is how long after a transport error the store keeps every
// call with a deadline on a goroutine of its own (see guardedClient).
const guardWindow = 5 * time.Second

// guardedClient is the rueidis client with one promise added: a call
// returns by its context's deadline. rueidis keeps that promise on its own
// except while it (re)connects to a node: a call that arrives then waits
// for the connection's set-up, which is bounded by the dialer's timeout
// and ConnWriteTimeout (2 s each with drivers.Open) and not by the call's
// context (rueidis v1.0.79, mux._pipe). A reconnect follows trouble (a
// node that stops answering, a refused connection, a topology refresh
// after an error), so for guardWindow after any call ends with a transport
// error, calls with a deadline run on a goroutine of their own and are
// answered with the context's error at the deadline; the goroutine ends
// when rueidis returns. A calm store pays one atomic load per call.
type guardedClient struct {
	rueidis.Client
	until atomic.Int64 // unix nanoseconds; 0 when calm
}

// guarded reports whether a call on ctx must be guarded now.
func (g *guardedClient) guarded(ctx context.Context) bool {
	u := g.until.Load()
	if u == 0 {
		return false
	}
	if time.Now().UnixNano() > u {
		g.until.CompareAndSwap(u, 0)
		return false
	}
	return ctx.Done() != nil
}

// check starts (or extends) the guard window when r failed in transport: a
// timeout, a refused or broken connection. Replies from Redis, errors
// included, do not count, nor does a caller that cancelled its call (a web
// client that went away is no sign of trouble, and a server sees many).
func (g *guardedClient) check(r rueidis.RedisResult) {
	if err := r.NonRedisError(); err != nil && !errors.Is(err, context.Canceled) {
		g.until.Store(time.Now().Add(guardWindow).UnixNano())
	}
}

func (g *guardedClient) checkAll(rs []rueidis.RedisResult) {
	for _, r := range rs {
		g.check(r)
	}
}

// Do is rueidis.Client's Do, answered by ctx's deadline (see guardedClient).
func (g *guardedClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if !g.guarded(ctx) {
		r := g.Client.Do(ctx, cmd)
		g.check(r)
		return r
	}
	return byDeadline(ctx, func() rueidis.RedisResult {
		r := g.Client.Do(ctx, cmd)
		g.check(r)
		return r
	}, rueidis.NewErrorResult)
}

// DoCache is rueidis.Client's DoCache, answered by ctx's deadline.
func (g *guardedClient) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	if !g.guarded(ctx) {
		r := g.Client.DoCache(ctx, cmd, ttl)
		g.check(r)
		return r
	}
	return byDeadline(ctx, func() rueidis.RedisResult {
		r := g.Client.DoCache(ctx, cmd, ttl)
		g.check(r)
		return r
	}, rueidis.NewErrorResult)
}

// DoMulti is rueidis.Client's DoMulti, answered by ctx's deadline.
func (g *guardedClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	if !g.guarded(ctx) {
		rs := g.Client.DoMulti(ctx, multi...)
		g.checkAll(rs)
		return rs
	}
	return byDeadline(ctx, func() []rueidis.RedisResult {
		rs := g.Client.DoMulti(ctx, multi...)
		g.checkAll(rs)
		return rs
	}, func(err error) []rueidis.RedisResult {
		rs := make([]rueidis.RedisResult, len(multi))
		for i := range rs {
			rs[i] = rueidis.NewErrorResult(err)
		}
		return rs
	})
}

// byDeadline runs call on a goroutine of its own and returns its result,
// or late(ctx.Err()) once ctx is done; the goroutine ends when call does.
func byDeadline[T any](ctx context.Context, call func() T, late func(error) T) T {
	ch := make(chan T, 1)
	go func() { ch <- call() }()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return late(ctx.Err())
	}
}
