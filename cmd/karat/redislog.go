package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// goredisLog sends go-redis's own log lines (connection pool retries while
// the store is down, ...) to slog at Debug, instead of the raw lines it
// prints on standard error by default: the store's health is reported by
// the health monitor, once per loss and recovery.
type goredisLog struct{ log *slog.Logger }

func (g goredisLog) Printf(ctx context.Context, format string, v ...any) {
	g.log.DebugContext(ctx, "go-redis", "msg", fmt.Sprintf(format, v...))
}

func quietGoRedis(log *slog.Logger) { redis.SetLogger(goredisLog{log: log}) }
