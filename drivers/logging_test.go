package drivers_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers"
)

// recorder is a slog.Handler that keeps the records it is given.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// TestGoRedisLogsGoToSlog: go-redis's own log lines (one per failed dial,
// printed to stderr by default) go to log/slog at Debug level once Open has
// built a go-redis client.
func TestGoRedisLogsGoToSlog(t *testing.T) {
	rec := &recorder{}
	old := slog.Default()
	slog.SetDefault(slog.New(rec))
	defer slog.SetDefault(old)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s, err := drivers.Open(ctx, "redis://"+refusedAddr(t)+"?driver=goredis"); err == nil {
		s.Close()
		t.Fatal("Open of a refused address succeeded")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	found := false
	for _, r := range rec.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" && a.Value.String() == "go-redis" {
				found = true
				if r.Level != slog.LevelDebug {
					t.Errorf("go-redis line at %v, want Debug: %s", r.Level, r.Message)
				}
			}
			return true
		})
	}
	if !found {
		t.Errorf("no go-redis line reached slog (got %d records)", len(rec.recs))
	}
}
