// Package rueidisstore is karat's store driver over rueidis. It takes a
// rueidis.Client, so one driver serves a single server, a Redis Cluster and
// Sentinel, and users keep their own client options and instrumentation
// (rueidisotel).
//
// Unless Options.DisableCache is set, New returns a *CachedStore, which adds
// store.CachedReader: GetCached reads through rueidis's client-side cache
// (Redis server-assisted, RESP3 CLIENT TRACKING) with a staleness bound that
// the driver enforces itself, a silent network partition included; see
// CachedStore. Every other method, plain Get included, asks the server.
//
// The driver sends explicit commands (SET ... PX, PEXPIRE, PTTL); where no
// single command is exact (IncrBy with a TTL, Expire with ttl 0) it runs the
// small Lua scripts of internal/redisdrv. Keys are validated, and a multi-key
// call whose keys span cluster slots is refused with store.ErrCrossSlot,
// before anything is sent: rueidis would panic on it in a cluster.
//
// # Errors and failing fast
//
// Errors carry a store class joined with rueidis's own error: a refused
// password, user or database (WRONGPASS, NOAUTH, NOPERM, "DB index is out of
// range"), which rueidis reports while it sets a connection up, and a TLS
// certificate that does not verify are store.ErrConfig; transport failures
// are store.ErrUnavailable.
//
// By default rueidis retries a read-only command after a network error until
// the caller's deadline, so a Get against a server that refuses connections
// took most of its deadline. Build the client with RetryDelay set to this
// package's RetryDelay (drivers.Open does): a refused connection is then not
// retried, and each call fails at once (well under a millisecond on
// loopback) with ErrUnavailable and "connection refused"; rueidis dials again
// on the next call, so the store recovers as soon as the server is back.
// Other network errors are retried as rueidis would.
//
// rueidis answers a call at its context's deadline, with one exception: a
// call that arrives while rueidis sets up a connection to the node waits
// for that set-up, bounded by the dialer's timeout and ConnWriteTimeout
// rather than by the call's deadline (seen in CI: an Eval with a 50 ms
// deadline held over a second while a topology refresh reconnected to a
// busy cluster node). Reconnects follow trouble, so for 5 seconds after a
// call fails in transport (a timeout, a refused or broken connection) the
// store runs each call that has a deadline on a goroutine of its own and
// answers it at the deadline with the context's error (a call its caller
// cancelled does not count as trouble). A calm store pays one atomic load
// per call for this; within the window each call with a deadline also pays
// a goroutine and a channel, a visible share of a client-side cache hit.
//
// # Cost of a cache hit
//
// A GetCached hit costs about as much as rueidis's own DoCache plus a copy
// of the value (the caller owns what it is given): no lock, no clock read
// when callers pass one maxStale, no shared counter, and for a hot key no
// command to build: the store keeps pinned GET commands for up to 8,192
// keys it has read (a direct-mapped table; a key whose slot another holds
// builds its command as rueidis's DoCache callers do, and takes the slot
// over once in 32 calls), which saves rueidis's per-command CRC16 of the
// key. GetCachedString skips the copy. See CachedStore and BENCHMARKS.md.
//
// Against miniredis, which has no CLIENT TRACKING and answers CLUSTER SLOTS,
// build the client with DisableCache: true and ForceSingleClient: true, and
// pass Options.DisableCache. miniredis is not a conformance target of this
// driver.
package rueidisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/karat-go/karat/internal/drivercore"
	"github.com/karat-go/karat/internal/redisdrv"
	"github.com/karat-go/karat/store"
)

// Options configures a store. The zero value is valid.
type Options struct {
	// CloseClient makes Close close the client too; drivers.Open sets it for
	// clients it builds. A client the user passes in stays open by default.
	CloseClient bool
	// DisableCache makes New return a *Store, which has no GetCached (it is
	// not a store.CachedReader). Set it when the client was built with
	// rueidis's DisableCache.
	DisableCache bool
	// MaxStale is the largest maxStale that GetCached honours (default 1
	// minute); a larger one is clamped down to it, which only makes reads
	// fresher. It also bounds how long a write is remembered for
	// read-your-writes, and so the memory that record takes.
	MaxStale time.Duration
}

// DefaultMaxStale is Options.MaxStale when it is not set.
const DefaultMaxStale = time.Minute

// Store is a store.Store over a rueidis client, without client-side caching.
// It also implements store.Scanner and store.StatsReporter (Calls and
// Errors). It is safe for concurrent use.
type Store struct {
	c           rueidis.Client // a *guardedClient over raw
	raw         rueidis.Client // the caller's client, for As and Close
	closeClient bool
	g           drivercore.Gate // closed flag, counters, the checks every call starts with
	hits        drivercore.Counter
	misses      drivercore.Counter
	scripts     sync.Map  // *store.Script → *rueidis.Lua
	writes      *writeLog // nil without a cache: nothing to read one's writes through
	cmds        *cmdTable // nil without a cache: GetCached's pinned commands
}

var (
	_ store.Store              = (*Store)(nil)
	_ store.Scanner            = (*Store)(nil)
	_ store.StatsReporter      = (*Store)(nil)
	_ store.CachedReader       = (*CachedStore)(nil)
	_ store.CachedStringReader = (*CachedStore)(nil)
)

// New returns a store over c; nil opts is valid. The result is a *CachedStore
// unless opts.DisableCache is set, then a *Store.
//
// The client should set ConnWriteTimeout (drivers.Open sets 2s): a silently
// partitioned connection is then dropped within seconds, with the cache it
// feeds, instead of after the rueidis defaults' much longer wait. GetCached's
// staleness bound does not depend on it; recovery from the partition does.
func New(c rueidis.Client, opts *Options) store.Store {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{c: &guardedClient{Client: c}, raw: c, closeClient: opts.CloseClient}
	if opts.DisableCache {
		return s
	}
	maxStale := opts.MaxStale
	if maxStale <= 0 {
		maxStale = DefaultMaxStale
	}
	s.writes = newWriteLog()
	s.cmds = newCmdTable()
	return &CachedStore{Store: s, maxStale: maxStale}
}

// do sends a command that writes keys and records the write for
// read-your-writes, whatever the outcome: a call that timed out may still
// have written.
func (s *Store) do(ctx context.Context, cmd rueidis.Completed, keys ...string) rueidis.RedisResult {
	resp := s.c.Do(ctx, cmd)
	s.wrote(keys...)
	return resp
}

// wrote records that this store just wrote keys.
func (s *Store) wrote(keys ...string) {
	if s.writes != nil {
		s.writes.note(keys)
	}
}

// mapErr turns err, met reading resp, into a store error class joined with
// it. fromScript says resp answered a user script's EVAL/EVALSHA, whose error
// replies the body may have raised itself.
func mapErr(ctx context.Context, resp rueidis.RedisResult, err error, fromScript bool) error {
	switch {
	case err == nil:
		return nil
	case rueidis.IsRedisNil(err):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case errors.Is(err, rueidis.ErrClosing):
		return fmt.Errorf("%w: %w", store.ErrClosed, err)
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		return redisdrv.ReplyError(replyText(resp, re), err, fromScript)
	}
	// An error reply to the connection's set-up (AUTH, HELLO, SELECT) comes
	// wrapped, not as the reply of the command.
	if re := new(rueidis.RedisError); errors.As(err, &re) && redisdrv.IsConfigReply(re.Error()) {
		return fmt.Errorf("%w: %w", store.ErrConfig, err)
	}
	return redisdrv.TransportError(ctx, err)
}

// replyText is the error reply of resp as Redis sent it. rueidis strips a
// leading "ERR " from its errors' text, which would change the message of a
// script's redis.error_reply("ERR ...") and hide miniredis's wrapping of
// script errors.
func replyText(resp rueidis.RedisResult, re *rueidis.RedisError) string {
	if resp.NonRedisError() == nil {
		msg, _ := resp.ToMessage()
		if text, _ := msg.ToString(); text != "" {
			return text
		}
	}
	return re.Error()
}

// bytesOf copies s into a new, non-nil slice: rueidis's strings may share
// memory with its cache, and an empty value must read back as []byte{}.
func bytesOf(s string) []byte {
	return []byte(s) // a copy, not zeroed first; []byte{} for ""
}

// bytesReply returns the string reply of resp, or the mapped error.
func (s *Store) bytesReply(ctx context.Context, resp rueidis.RedisResult) ([]byte, error) {
	str, err := resp.ToString()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, resp, err, false))
	}
	return bytesOf(str), nil
}

// stringReply returns the string reply of resp, not copied, or the mapped
// error.
func (s *Store) stringReply(ctx context.Context, resp rueidis.RedisResult) (string, error) {
	str, err := resp.ToString()
	if err != nil {
		return "", s.g.End(mapErr(ctx, resp, err, false))
	}
	return str, nil
}

// getString is Get's server read, as a string.
func (s *Store) getString(ctx context.Context, key string) (string, error) {
	return s.stringReply(ctx, s.c.Do(ctx, s.c.B().Get().Key(key).Build()))
}

// intReply returns the integer reply of resp, or the mapped error.
func (s *Store) intReply(ctx context.Context, resp rueidis.RedisResult) (int64, error) {
	n, err := resp.ToInt64()
	return n, s.g.End(mapErr(ctx, resp, err, false))
}

// Get implements store.Store. It always asks the server.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	return s.get(ctx, key)
}

func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	return s.bytesReply(ctx, s.c.Do(ctx, s.c.B().Get().Key(key).Build()))
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
	resp := s.c.Do(ctx, s.c.B().Mget().Key(keys...).Build())
	vs, err := resp.ToArray()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, resp, err, false))
	}
	for i, v := range vs {
		// MGET answers nil for a missing key and for a key of another type.
		if v.IsString() {
			str, _ := v.ToString()
			out[i] = bytesOf(str)
		}
	}
	return out, nil
}

// setCmd builds SET key val [NX] [PX ms]; the value is copied, since rueidis
// may still be writing the command after a cancelled call returned.
func (s *Store) setCmd(key string, val []byte, nx bool, ttl time.Duration) rueidis.Completed {
	set := s.c.B().Set().Key(key).Value(string(val))
	ms := store.TTLMillis(ttl)
	switch {
	case nx && ms > 0:
		return set.Nx().PxMilliseconds(ms).Build()
	case nx:
		return set.Nx().Build()
	case ms > 0:
		return set.PxMilliseconds(ms).Build()
	}
	return set.Build()
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return err
	}
	resp := s.do(ctx, s.setCmd(key, val, false, ttl), key)
	return s.g.End(mapErr(ctx, resp, resp.Error(), false))
}

// SetNX implements store.Store.
func (s *Store) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return false, err
	}
	resp := s.do(ctx, s.setCmd(key, val, true, ttl), key)
	switch err := resp.Error(); {
	case rueidis.IsRedisNil(err): // SET NX answers nil when the key exists
		return false, nil
	case err != nil:
		return false, s.g.End(mapErr(ctx, resp, err, false))
	}
	return true, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) (int64, error) {
	if err := s.g.Begin(ctx, keys...); err != nil || len(keys) == 0 {
		return 0, err
	}
	return s.intReply(ctx, s.do(ctx, s.c.B().Del().Key(keys...).Build(), keys...))
}

// HGet implements store.Store.
func (s *Store) HGet(ctx context.Context, key, field string) ([]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	return s.bytesReply(ctx, s.c.Do(ctx, s.c.B().Hget().Key(key).Field(field).Build()))
}

// HSet implements store.Store.
func (s *Store) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	if err := s.g.Begin(ctx, key); err != nil || len(fields) == 0 {
		return err
	}
	cmd := s.c.B().Hset().Key(key).FieldValue()
	for f, v := range fields {
		cmd = cmd.FieldValue(f, string(v))
	}
	resp := s.do(ctx, cmd.Build(), key)
	return s.g.End(mapErr(ctx, resp, resp.Error(), false))
}

// HDel implements store.Store.
func (s *Store) HDel(ctx context.Context, key string, fields ...string) (int64, error) {
	if err := s.g.Begin(ctx, key); err != nil || len(fields) == 0 {
		return 0, err
	}
	return s.intReply(ctx, s.do(ctx, s.c.B().Hdel().Key(key).Field(fields...).Build(), key))
}

// HGetAll implements store.Store.
func (s *Store) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return nil, err
	}
	resp := s.c.Do(ctx, s.c.B().Hgetall().Key(key).Build())
	m, err := resp.AsStrMap()
	if err != nil {
		return nil, s.g.End(mapErr(ctx, resp, err, false))
	}
	if len(m) == 0 { // HGETALL answers an empty map for a missing key
		return nil, store.ErrNotFound
	}
	out := make(map[string][]byte, len(m))
	for f, v := range m {
		out[f] = bytesOf(v)
	}
	return out, nil
}

// IncrBy implements store.Store.
func (s *Store) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return 0, err
	}
	if ttl == 0 {
		return s.intReply(ctx, s.do(ctx, s.c.B().Incrby().Key(key).Increment(delta).Build(), key))
	}
	args := []string{strconv.FormatInt(delta, 10), strconv.FormatInt(store.TTLMillis(ttl), 10)}
	v, err := s.run(ctx, redisdrv.IncrByScript, []string{key}, args, false)
	return v.Int, s.g.End(err)
}

// Expire implements store.Store.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := s.g.BeginTTL(ctx, key, ttl); err != nil {
		return false, err
	}
	if ttl == 0 {
		v, err := s.run(ctx, redisdrv.PersistScript, []string{key}, nil, false)
		return v.Int == 1, s.g.End(err)
	}
	n, err := s.intReply(ctx, s.do(ctx, s.c.B().Pexpire().Key(key).Milliseconds(store.TTLMillis(ttl)).Build(), key))
	return n == 1, err
}

// TTL implements store.Store.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := s.g.Begin(ctx, key); err != nil {
		return 0, err
	}
	ms, err := s.intReply(ctx, s.c.Do(ctx, s.c.B().Pttl().Key(key).Build()))
	if err != nil {
		return 0, err
	}
	return redisdrv.FromPTTL(ms)
}

// Eval implements store.Store.
func (s *Store) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	if err := s.g.Begin(ctx, keys...); err != nil {
		return store.Value{}, err
	}
	v, err := s.run(ctx, sc, keys, args, true)
	return v, s.g.End(err)
}

// run runs sc with EVALSHA, then EVAL if the server does not have it cached
// (rueidis.Lua does both), records its keys as written, and converts the
// reply. userScript says sc is a caller's script, whose error replies may
// have been raised by its body (store.ScriptError).
func (s *Store) run(ctx context.Context, sc *store.Script, keys, args []string, userScript bool) (store.Value, error) {
	lua, ok := s.scripts.Load(sc)
	if !ok {
		lua, _ = s.scripts.LoadOrStore(sc, rueidis.NewLuaScript(sc.Lua()))
	}
	resp := lua.(*rueidis.Lua).Exec(ctx, s.c, keys, args)
	s.wrote(keys...)
	msg, err := resp.ToMessage()
	if err == nil {
		return messageValue(&msg)
	}
	if rueidis.IsRedisNil(err) { // the script returned nil or false
		return store.NilValue(), nil
	}
	return store.Value{}, mapErr(ctx, resp, err, userScript)
}

// messageValue converts a script's reply, not an error, to a store.Value,
// as redisdrv.ToValue(m.ToAny()) does but without the interface values and
// []any in between: the integers, strings, nils, booleans and arrays that a
// script returns are read from the message directly. Any other type goes
// through ToAny and ToValue (an error nested in an array included), so the
// result is the same.
func messageValue(m *rueidis.RedisMessage) (store.Value, error) {
	switch {
	case m.IsInt64():
		n, _ := m.ToInt64()
		return store.IntValue(n), nil
	case m.IsString():
		str, _ := m.ToString()
		return store.StringValue(str), nil
	case m.IsNil():
		return store.NilValue(), nil
	case m.IsBool():
		b, _ := m.ToBool()
		return store.BoolValue(b), nil
	case m.IsArray():
		vs, _ := m.ToArray()
		out := make([]store.Value, len(vs))
		for i := range vs {
			v, err := messageValue(&vs[i])
			if err != nil {
				return store.Value{}, err
			}
			out[i] = v
		}
		return store.ArrayValue(out...), nil
	}
	r, err := m.ToAny()
	if err != nil {
		r = err // as ToAny puts an error nested in an array
	}
	return redisdrv.ToValue(r)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.g.Begin(ctx); err != nil {
		return err
	}
	resp := s.c.Do(ctx, s.c.B().Ping().Build())
	return s.g.End(mapErr(ctx, resp, resp.Error(), false))
}

// Close implements store.Store: it marks the store closed and, with
// Options.CloseClient, closes the client.
func (s *Store) Close() error {
	if !s.g.Close() || !s.closeClient {
		return nil
	}
	s.raw.Close()
	return nil
}

// As implements store.Store. It knows *rueidis.Client.
func (s *Store) As(target any) bool {
	t, ok := target.(*rueidis.Client)
	if ok {
		*t = s.raw
	}
	return ok
}

// Stats implements store.StatsReporter. Calls counts every call of a Store
// method but As, and of Scan and GetCached; Errors the failed ones, as
// store.Stats says; CacheHits and CacheMisses split the GetCached calls.
func (s *Store) Stats() store.Stats {
	calls, errs := s.g.Counts()
	hits := s.hits.Load()
	return store.Stats{
		Calls:       calls + hits, // a hit is counted only as a hit
		Errors:      errs,
		CacheHits:   hits,
		CacheMisses: s.misses.Load(),
	}
}

// Scan implements store.Scanner with SCAN MATCH on every master of a
// cluster, one master after the other, so fn is never called concurrently.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(keys []string) error) error {
	if err := s.g.Begin(ctx); err != nil {
		return err
	}
	nodes := []rueidis.Client{s.c}
	if s.c.Mode() == rueidis.ClientModeCluster {
		var err error
		if nodes, err = s.masters(ctx); err != nil {
			return s.g.End(err)
		}
	}
	pattern := redisdrv.ScanPattern(prefix)
	for _, n := range nodes {
		var cursor uint64
		for {
			resp := n.Do(ctx, n.B().Scan().Cursor(cursor).Match(pattern).Count(redisdrv.ScanCount).Build())
			e, err := resp.AsScanEntry()
			if err != nil {
				return s.g.End(mapErr(ctx, resp, err, false))
			}
			if len(e.Elements) > 0 {
				if err := fn(e.Elements); err != nil {
					return s.g.End(err)
				}
			}
			if e.Cursor == 0 {
				break
			}
			cursor = e.Cursor
		}
	}
	return nil
}

// masters returns the cluster's masters among the nodes the client knows,
// which include replicas, by asking each its ROLE.
func (s *Store) masters(ctx context.Context) ([]rueidis.Client, error) {
	var out []rueidis.Client
	for _, n := range s.c.Nodes() {
		resp := n.Do(ctx, n.B().Role().Build())
		role, err := resp.ToArray()
		if err != nil {
			return nil, mapErr(ctx, resp, err, false)
		}
		if len(role) > 0 {
			if r, _ := role[0].ToString(); r == "master" {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// MapError returns the store error class of err, an error of the rueidis
// client itself (rueidis.NewClient's, say) rather than of a command's reply,
// joined with err: store.ErrConfig for a refused password, user or database,
// store.ErrUnavailable for a transport failure.
func MapError(ctx context.Context, err error) error {
	return mapErr(ctx, rueidis.RedisResult{}, err, false)
}

// RetryDelay is a rueidis.ClientOption.RetryDelay that fails fast while a
// server refuses connections: rueidis retries a read-only command on a
// network error until the caller's deadline, by default, so a Get against a
// stopped server took most of its deadline and then reported only the
// deadline. RetryDelay does not retry an error that is a refused connection
// (the call fails at once, with ErrUnavailable and the cause), and otherwise
// backs off like rueidis's default: exponentially from 1µs with jitter, up to
// 1s. drivers.Open sets it.
func RetryDelay(attempts int, _ rueidis.Completed, err error) time.Duration {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return -1
	}
	base := time.Microsecond << min(attempts, 20)
	return min(time.Second, base+rand.N(base))
}
