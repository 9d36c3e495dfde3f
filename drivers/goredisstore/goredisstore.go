// Package goredisstore is karat's store driver over go-redis v9. It takes a
// redis.UniversalClient, so one driver serves a single server
// (*redis.Client), a Redis Cluster (*redis.ClusterClient) and Sentinel (the
// failover client, a *redis.Client), and users keep their own client options
// and instrumentation (redisotel).
//
// The driver sends explicit commands (SET ... PX, PEXPIRE, PTTL) rather than
// go-redis's duration helpers, whose "-1 means KEEPTTL" and seconds-or-
// milliseconds choices would leak through the store contract; where no single
// command is exact (IncrBy with a TTL, Expire with ttl 0) it runs the small
// Lua scripts of internal/redisdrv. It has no client-side cache: it is not a
// store.CachedReader.
//
// # Errors and failing fast
//
// Errors carry a store class joined with go-redis's own error: a refused
// password, user or database (WRONGPASS, NOAUTH, NOPERM, "DB index is out of
// range") and a TLS certificate that does not verify are store.ErrConfig;
// transport failures are store.ErrUnavailable.
//
// How fast a call fails while the server refuses connections depends on the
// client's options, which are the user's: go-redis's defaults retry each dial
// 5 times 100ms apart and each command 3 times with up to 1s of backoff, so a
// call takes its whole deadline and reports only the deadline. drivers.Open
// builds its clients with DialerRetries 1, MaxRetries 1, MinRetryBackoff 2ms,
// MaxRetryBackoff 20ms and DialTimeout 5s: a call then fails in milliseconds
// with "connection refused", and the client recovers by itself within about
// a second of the server's return (go-redis probes a server it stopped
// dialling once a second). Do the same for a client of your own.
//
// go-redis prints its own log lines (one per failed dial) to stderr unless
// redis.SetLogger is given another logger, process-wide; SlogLogger routes
// them to log/slog, and drivers.Open installs it.
package goredisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/karat-go/karat/internal/drivercore"
	"github.com/karat-go/karat/internal/redisdrv"
	"github.com/karat-go/karat/store"
)

// Options configures a Store. The zero value is valid.
type Options struct {
	// CloseClient makes Close close the client too; drivers.Open sets it for
	// clients it builds. A client the user passes in stays open by default.
	CloseClient bool
}

// Store is a store.Store over a go-redis client. It also implements
// store.Scanner and store.StatsReporter (Calls and Errors). It is safe for
// concurrent use.
type Store struct {
	c           redis.UniversalClient
	closeClient bool
	g           drivercore.Gate // closed flag, counters, the checks every call starts with
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Scanner       = (*Store)(nil)
	_ store.StatsReporter = (*Store)(nil)
)

// New returns a *Store over c, as a store.Store; nil opts is valid.
//
// It returns the interface, like rueidisstore.New (whose concrete type
// depends on its options), so that code switching between the two drivers
// reads alike; the capabilities are found with store.Capability and the
// client with As.
//
// The client should have ContextTimeoutEnabled: true (drivers.Open sets it):
// without it go-redis applies only its own read and write timeouts to a
// command in flight and ignores the context's deadline, so a call against a
// stalled server outlives its deadline.
func New(c redis.UniversalClient, opts *Options) store.Store {
	if opts == nil {
		opts = &Options{}
	}
	return &Store{c: c, closeClient: opts.CloseClient}
}

// mapErr turns a go-redis error into a store error class joined with it.
// fromScript says it answered a user script's EVAL/EVALSHA, whose error
// replies the body may have raised itself. Error replies of scripts, the
// driver's own included, may come wrapped by miniredis; other replies never
// match that wrapping.
func mapErr(ctx context.Context, err error, fromScript bool) error {
	var reply redis.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("%w: %w", store.ErrClosed, err)
	case errors.As(err, &reply):
		return redisdrv.ReplyError(reply.Error(), err, fromScript)
	}
	return redisdrv.TransportError(ctx, err)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, key).Bytes()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, err, false))
	}
	return v, nil
}

// MGet implements store.Store.
func (s *Store) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := s.g.Begin(ctx, keys...); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	vs, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, err, false))
	}
	for i, v := range vs {
		// MGET answers nil for a missing key and for a key of another type.
		if str, ok := v.(string); ok {
			out[i] = []byte(str)
		}
	}
	return out, nil
}

// setArgs builds SET key val [NX] [PX ms] explicitly, so that neither
// KEEPTTL nor a seconds-based EX can slip in.
func setArgs(key string, val []byte, nx bool, ttl time.Duration) []any {
	args := []any{"set", key, val}
	if nx {
		args = append(args, "nx")
	}
	if ms := store.TTLMillis(ttl); ms > 0 {
		args = append(args, "px", ms)
	}
	return args
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return err
	}
	return s.g.End(mapErr(ctx, s.c.Do(ctx, setArgs(key, val, false, ttl)...).Err(), false))
}

// SetNX implements store.Store.
func (s *Store) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return false, err
	}
	err := s.c.Do(ctx, setArgs(key, val, true, ttl)...).Err()
	switch {
	case errors.Is(err, redis.Nil): // SET NX answers nil when the key exists
		return false, nil
	case err != nil:
		return false, s.g.End(mapErr(ctx, err, false))
	}
	return true, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) (int64, error) {
	if err := s.g.Begin(ctx, keys...); err != nil || len(keys) == 0 {
		return 0, err
	}
	n, err := s.c.Del(ctx, keys...).Result()
	return n, s.g.End(mapErr(ctx, err, false))
}

// HGet implements store.Store.
func (s *Store) HGet(ctx context.Context, key, field string) ([]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	v, err := s.c.HGet(ctx, key, field).Bytes()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, err, false))
	}
	return v, nil
}

// HSet implements store.Store.
func (s *Store) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	if err := s.g.Begin(ctx, key); err != nil || len(fields) == 0 {
		return err
	}
	args := make([]any, 0, 2*len(fields))
	for f, v := range fields {
		args = append(args, f, v)
	}
	return s.g.End(mapErr(ctx, s.c.HSet(ctx, key, args...).Err(), false))
}

// HDel implements store.Store.
func (s *Store) HDel(ctx context.Context, key string, fields ...string) (int64, error) {
	if err := s.g.Begin(ctx, key); err != nil || len(fields) == 0 {
		return 0, err
	}
	n, err := s.c.HDel(ctx, key, fields...).Result()
	return n, s.g.End(mapErr(ctx, err, false))
}

// HGetAll implements store.Store.
func (s *Store) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	m, err := s.c.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, err, false))
	}
	if len(m) == 0 { // HGETALL answers an empty map for a missing key
		return nil, store.ErrNotFound
	}
	out := make(map[string][]byte, len(m))
	for f, v := range m {
		out[f] = []byte(v)
	}
	return out, nil
}

// IncrBy implements store.Store.
func (s *Store) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return 0, err
	}
	if ttl == 0 {
		n, err := s.c.IncrBy(ctx, key, delta).Result()
		return n, s.g.End(mapErr(ctx, err, false))
	}
	v, err := s.run(ctx, redisdrv.IncrByScript, []string{key}, []any{delta, store.TTLMillis(ttl)}, false)
	if err != nil {
		return 0, s.g.End(err)
	}
	return v.Int, nil
}

// Expire implements store.Store.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return false, err
	}
	if ttl == 0 {
		v, err := s.run(ctx, redisdrv.PersistScript, []string{key}, nil, false)
		if err != nil {
			return false, s.g.End(err)
		}
		return v.Int == 1, nil
	}
	n, err := s.c.Do(ctx, "pexpire", key, store.TTLMillis(ttl)).Int64()
	if err != nil {
		return false, s.g.End(mapErr(ctx, err, false))
	}
	return n == 1, nil
}

// TTL implements store.Store.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return 0, err
	}
	ms, err := s.c.Do(ctx, "pttl", key).Int64()
	if err != nil {
		return 0, s.g.End(mapErr(ctx, err, false))
	}
	return redisdrv.FromPTTL(ms)
}

// Eval implements store.Store.
func (s *Store) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if err := s.g.Begin(ctx, keys...); err != nil {
		return store.Value{}, err
	}
	anyArgs := make([]any, len(args))
	for i, a := range args {
		anyArgs[i] = a
	}
	v, err := s.run(ctx, sc, keys, anyArgs, true)
	return v, s.g.End(err)
}

// run runs sc with EVALSHA, then EVAL if the server does not have it cached,
// and converts the reply. userScript says sc is a caller's script, whose
// error replies may have been raised by its body (store.ScriptError).
func (s *Store) run(ctx context.Context, sc *store.Script, keys []string, args []any, userScript bool) (store.Value, error) {
	r, err := s.c.EvalSha(ctx, sc.SHA1(), keys, args...).Result()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		r, err = s.c.Eval(ctx, sc.Lua(), keys, args...).Result()
	}
	switch {
	case errors.Is(err, redis.Nil): // the script returned nil or false
		return store.NilValue(), nil
	case err != nil:
		return store.Value{}, mapErr(ctx, err, userScript)
	}
	return redisdrv.ToValue(r)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.g.Begin(ctx); err != nil {
		return err
	}
	return s.g.End(mapErr(ctx, s.c.Ping(ctx).Err(), false))
}

// Close implements store.Store: it marks the store closed and, with
// Options.CloseClient, closes the client.
func (s *Store) Close() error {
	if !s.g.Close() || !s.closeClient {
		return nil
	}
	return s.g.End(s.c.Close())
}

// As implements store.Store. It knows *redis.UniversalClient and, when the
// client is of that type, **redis.Client and **redis.ClusterClient.
func (s *Store) As(target any) bool {
	switch t := target.(type) {
	case *redis.UniversalClient:
		*t = s.c
		return true
	case **redis.Client:
		c, ok := s.c.(*redis.Client)
		if ok {
			*t = c
		}
		return ok
	case **redis.ClusterClient:
		c, ok := s.c.(*redis.ClusterClient)
		if ok {
			*t = c
		}
		return ok
	}
	return false
}

// Stats implements store.StatsReporter. Calls counts every call of a Store
// method but As, and of Scan; Errors the failed ones, as store.Stats says.
func (s *Store) Stats() store.Stats {
	calls, errs := s.g.Counts()
	return store.Stats{Calls: calls, Errors: errs}
}

// fnError marks an error returned by Scan's fn, so that it reaches the
// caller as fn returned it rather than mapped as a Redis error.
type fnError struct{ err error }

// Error returns fn's error text.
func (e fnError) Error() string { return e.err.Error() }

// Scan implements store.Scanner with SCAN MATCH on every master of a
// cluster, one master at a time as far as fn can tell: fn is never called
// concurrently.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(keys []string) error) error {
	if err := s.g.Begin(ctx); err != nil {
		return err
	}
	var mu sync.Mutex
	var stopped error
	call := func(keys []string) error {
		mu.Lock()
		defer mu.Unlock()
		if stopped == nil {
			stopped = fn(keys)
		}
		if stopped != nil {
			return fnError{stopped}
		}
		return nil
	}
	pattern := redisdrv.ScanPattern(prefix)
	scanNode := func(ctx context.Context, c redis.UniversalClient) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, redisdrv.ScanCount).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := call(keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		// ForEachMaster scans the masters concurrently; call serialises fn.
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scanNode(ctx, c) })
	} else {
		err = scanNode(ctx, s.c)
	}
	var fe fnError
	if errors.As(err, &fe) {
		return s.g.End(fe.err)
	}
	return s.g.End(mapErr(ctx, err, false))
}

// SlogLogger returns a go-redis logger (for redis.SetLogger) that writes
// go-redis's own log lines to l at Debug level, with the attribute
// "component"="go-redis"; nil l means slog.Default(). go-redis prints them
// to stderr by default, one per failed dial while a server is down; karat
// returns those failures as errors, so the lines only help debugging.
// drivers.Open installs it the first time it builds a go-redis client; the
// logger is process-wide in go-redis, so a program that builds its own
// clients decides for itself.
func SlogLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return slogLogger{l}
}

type slogLogger struct{ l *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	l := s.l
	if l == nil {
		l = slog.Default()
	}
	if l.Enabled(ctx, slog.LevelDebug) {
		l.Log(ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "component", "go-redis")
	}
}
