package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/goredisstore"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// ScriptCase is one input on which CheckScript runs both bodies of a script.
type ScriptCase struct {
	Name string
	// Keys are names; CheckScript turns them into keys under a prefix of its
	// own that share one hash tag, in this order.
	Keys []string
	Args []string
	// Setup, if set, writes the initial state; it runs on both stores.
	Setup func(ctx context.Context, s store.Store, keys []string) error
	// Equal, if set, compares the Lua result (target) with the Go one
	// (reference) instead of Value.Equal: for results that depend on the
	// clock, on a target whose clock CheckScript cannot set.
	Equal func(target, reference store.Value) bool
}

// CheckScript runs s on every case twice, the Lua body against the Go body,
// and compares the two results and the two resulting states: type, value
// and TTL of EVERY key under the case's prefix (found with the stores'
// Scanner), so a body that writes a key it did not declare is caught. It
// also checks that a case that fails writes nothing, on either side.
//
// The Lua body runs on a store from h; the Go body on a reference memory
// store. When h's store is the memory driver (which runs Go bodies only),
// the Lua body runs on a miniredis server instead (gopher-lua), so that a
// disagreement is caught by go test without a Redis server.
//
// Time: when h is a Clock (or on miniredis), both clocks are set to the same
// instant far from now, so a body that reads the machine's clock instead of
// the store's is caught, and TTLs must agree to the millisecond. Otherwise
// the reference clock is set to the server's TIME just before the setup, and
// a TTL on the server may be shorter than the reference's by at most the
// time the case took from there to its snapshot (plus a millisecond of
// rounding), never longer.
//
// Keys: the case's names become store.TaggedKey(prefix, name) for a random
// prefix of the case's own, so they share one hash tag and every key whose
// name begins with "{prefix}" is compared and deleted at the end.
func CheckScript(t *testing.T, h Harness, s *store.Script, cases []ScriptCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			checkScriptCase(t, h, s, c)
		})
	}
}

// tb is what CheckScript needs of a *testing.T, so that a test can check
// that a wrong script pair fails it.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	FailNow()
	Logf(format string, args ...any)
}

// miniredisClock is Clock for a miniredis server.
type miniredisClock struct{ m *miniredis.Miniredis }

func (c miniredisClock) SetNow(t time.Time)      { c.m.SetTime(t) }
func (c miniredisClock) Advance(d time.Duration) { c.m.FastForward(d) }

// luaTarget returns the store CheckScript runs Lua bodies on: h's store, or
// for the memory driver a store over a fresh miniredis, with its clock.
func luaTarget(t tb, ctx context.Context, h Harness) (s store.Store, clock Clock, done func()) {
	t.Helper()
	target, err := h.MakeStore(ctx)
	require.NoError(t, err)
	var mem *memstore.Store
	if !target.As(&mem) {
		clock, _ := h.(Clock)
		return target, clock, func() {}
	}
	m := miniredis.NewMiniRedis()
	require.NoError(t, m.Start(), "starting miniredis to run Lua bodies")
	lua := goredisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true}),
		&goredisstore.Options{CloseClient: true})
	return lua, miniredisClock{m}, func() { lua.Close(); m.Close() }
}

func checkScriptCase(t tb, h Harness, s *store.Script, c ScriptCase) {
	t.Helper()
	ctx := context.Background()
	target, clock, done := luaTarget(t, ctx, h)
	defer done()
	refClock := memstore.NewFakeClock(farTime)
	ref := memstore.New(&memstore.Options{Clock: refClock})
	defer ref.Close()

	prefix := randomPrefix()
	scope := "{" + prefix + "}" // what every key of the case begins with
	keys := make([]string, len(c.Keys))
	for i, name := range c.Keys {
		var err error
		keys[i], err = store.TaggedKey(prefix, name)
		require.NoError(t, err)
	}
	defer deleteScope(t, target, scope, keys)
	if _, ok := store.Capability[store.Scanner](target); !ok {
		t.Logf("%s %s: the target has no Scanner: only the declared keys are compared", s.Name(), c.Name)
	}

	// cmp bounds how much shorter (lo) or longer (hi) a TTL on the target
	// may be than on the reference.
	var cmp func() ttlBounds
	if clock != nil {
		clock.SetNow(farTime)
		cmp = func() ttlBounds { return ttlBounds{} }
	} else {
		began := time.Now()
		// Before the setup, so that TTLs it sets count from the same now.
		now, err := storeNow(ctx, target)
		require.NoError(t, err, "reading the target's clock")
		refClock.Set(now)
		cmp = func() ttlBounds {
			return ttlBounds{lo: time.Since(began) + time.Millisecond, hi: time.Millisecond}
		}
	}
	if c.Setup != nil {
		require.NoError(t, c.Setup(ctx, target, keys), "setup on the target")
		require.NoError(t, c.Setup(ctx, ref, keys), "setup on the reference")
	}
	before := snapshot(t, ctx, target, scope, keys)
	requireSameState(t, before, snapshot(t, ctx, ref, scope, keys), cmp(), "after setup (target vs reference)")

	got, gotErr := target.Eval(ctx, s, keys, c.Args...)
	want, wantErr := ref.Eval(ctx, s, keys, c.Args...)
	if msg := sameError(gotErr, wantErr); msg != "" {
		t.Fatalf("%s %s: Lua and Go bodies fail differently: %s\n  Lua: %v\n  Go:  %v", s.Name(), c.Name, msg, gotErr, wantErr)
	}
	if gotErr == nil {
		eq := c.Equal
		if eq == nil {
			eq = store.Value.Equal
		}
		if !eq(got, want) {
			t.Errorf("%s %s: results differ\n  Lua: %s\n  Go:  %s", s.Name(), c.Name, got, want)
		}
	}
	after := snapshot(t, ctx, target, scope, keys)
	requireSameState(t, after, snapshot(t, ctx, ref, scope, keys), cmp(), "after the call (Lua state vs Go state)")
	if gotErr != nil {
		requireSameState(t, after, before, cmp(), "the failed call wrote something")
	}
}

// deleteScope deletes the declared keys and every key under scope the
// target's Scanner finds (undeclared writes included).
func deleteScope(t tb, s store.Store, scope string, declared []string) {
	t.Helper()
	ctx := context.Background()
	keys := map[string]bool{}
	for _, k := range declared {
		keys[k] = true
	}
	if sc, ok := store.Capability[store.Scanner](s); ok {
		if err := sc.Scan(ctx, scope, func(batch []string) error {
			for _, k := range batch {
				keys[k] = true
			}
			return nil
		}); err != nil {
			t.Errorf("cleanup: scanning %q: %v", scope, err)
		}
	}
	for k := range keys {
		if _, err := s.Delete(ctx, k); err != nil {
			t.Errorf("cleanup: deleting %q: %v", k, err)
			return
		}
	}
}

// farTime is the instant CheckScript and the clock case set controllable
// clocks to: far from any machine's clock, with microseconds, so a body that
// reads time.Now or truncates to seconds is caught.
var farTime = time.Date(2061, time.July, 28, 12, 34, 56, 789012000, time.UTC)

// sentinels are the store error classes a script call can end with.
var sentinels = []error{store.ErrWrongType, store.ErrNotInteger, store.ErrInvalidKey, store.ErrInvalidTTL,
	store.ErrCrossSlot, store.ErrFull, store.ErrNotFound, store.ErrUnavailable, store.ErrClosed}

// sameError returns "" when a and b are the same failure: both nil, both a
// *store.ScriptError with one message, or both of one store error class.
func sameError(a, b error) string {
	if a == nil && b == nil {
		return ""
	}
	if (a == nil) != (b == nil) {
		return "one failed, the other did not"
	}
	var sa, sb *store.ScriptError
	if errors.As(a, &sa) || errors.As(b, &sb) {
		if !errors.As(a, &sa) || !errors.As(b, &sb) {
			return "only one raised a ScriptError"
		}
		if sa.Message != sb.Message {
			return fmt.Sprintf("ScriptError messages %q and %q", sa.Message, sb.Message)
		}
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(a, s) != errors.Is(b, s) {
			return fmt.Sprintf("only one is %v", s)
		}
	}
	return ""
}

// keyState is what CheckScript compares of a key.
type keyState struct {
	Kind string // "missing", "string", "hash"
	Str  string
	Hash map[string]string
	TTL  time.Duration
}

// snapshot returns the state of the declared keys and of every key under
// scope that s's Scanner finds.
func snapshot(t tb, ctx context.Context, s store.Store, scope string, declared []string) map[string]keyState {
	t.Helper()
	keys := append([]string(nil), declared...)
	if sc, ok := store.Capability[store.Scanner](s); ok {
		require.NoError(t, sc.Scan(ctx, scope, func(batch []string) error {
			keys = append(keys, batch...)
			return nil
		}), "scanning %q", scope)
	}
	out := make(map[string]keyState, len(keys))
	for _, k := range keys {
		if _, done := out[k]; done {
			continue
		}
		ttl, err := s.TTL(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			out[k] = keyState{Kind: "missing"}
			continue
		}
		require.NoError(t, err)
		st := keyState{TTL: ttl}
		v, err := s.Get(ctx, k)
		switch {
		case err == nil:
			st.Kind, st.Str = "string", string(v)
		case errors.Is(err, store.ErrWrongType):
			all, err := s.HGetAll(ctx, k)
			require.NoError(t, err)
			st.Kind, st.Hash = "hash", map[string]string{}
			for f, v := range all {
				st.Hash[f] = string(v)
			}
		default:
			require.NoError(t, err)
		}
		out[k] = st
	}
	return out
}

// ttlBounds: a TTL on one side (a) may be shorter than on the other (b) by
// at most lo and longer by at most hi.
type ttlBounds struct{ lo, hi time.Duration }

// requireSameState fails unless every key of a or b is in the same state on
// both sides (a key one side lacks is missing there).
func requireSameState(t tb, a, b map[string]keyState, bounds ttlBounds, what string) {
	t.Helper()
	names := make([]string, 0, len(a)+len(b))
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	missing := keyState{Kind: "missing"}
	for _, k := range names {
		x, ok := a[k]
		if !ok {
			x = missing
		}
		y, ok := b[k]
		if !ok {
			y = missing
		}
		d := x.TTL - y.TTL
		ttlOK := -bounds.lo <= d && d <= bounds.hi && (x.TTL == 0) == (y.TTL == 0)
		xs, ys := x, y
		xs.TTL, ys.TTL = 0, 0
		if !assert.Equal(t, xs, ys, "key %q: %s", k, what) || !ttlOK {
			t.Fatalf("key %q: %s: %+v vs %+v (the first TTL may be shorter by %v, longer by %v)", k, what, x, y, bounds.lo, bounds.hi)
		}
	}
}

// casScript is a compare-and-increment: if KEYS[1] (missing counts as "0")
// holds ARGV[1], store ARGV[1]+1 there with a TTL of ARGV[2] ms, record
// ARGV[3] in the hash KEYS[2], and return the new value; otherwise raise
// CONFLICT and write nothing.
var casScript = store.NewScript("conformance-cas", `
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '0' end
if cur ~= ARGV[1] then
  return redis.error_reply('CONFLICT have ' .. cur)
end
local audit = redis.call('TYPE', KEYS[2])['ok']
if audit ~= 'none' and audit ~= 'hash' then
  return redis.error_reply('WRONGTYPE audit key is not a hash')
end
local n = tonumber(cur) + 1
redis.call('SET', KEYS[1], tostring(n), 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'last', ARGV[3])
return n`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		cur := "0"
		b, err := v.Get(keys[0])
		switch {
		case err == nil:
			cur = string(b)
		case !errors.Is(err, store.ErrNotFound):
			return store.Value{}, err
		}
		if cur != args[0] {
			return store.Value{}, &store.ScriptError{Message: "CONFLICT have " + cur}
		}
		n, err := strconv.ParseInt(cur, 10, 64)
		if err != nil {
			return store.Value{}, err
		}
		ms, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return store.Value{}, err
		}
		if _, err := v.HGetAll(keys[1]); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Value{}, err // check before writing: Lua's HSET would fail after its SET
		}
		if err := v.Set(keys[0], []byte(strconv.FormatInt(n+1, 10)), time.Duration(ms)*time.Millisecond); err != nil {
			return store.Value{}, err
		}
		if err := v.HSet(keys[1], map[string][]byte{"last": []byte(args[2])}); err != nil {
			return store.Value{}, err
		}
		return store.IntValue(n + 1), nil
	})

// clockScript returns the store's time as {seconds, microseconds}.
var clockScript = store.NewScript("conformance-clock", `
local t = redis.call('TIME')
return {tonumber(t[1]), tonumber(t[2])}`,
	func(v store.ScriptView, _, _ []string) (store.Value, error) {
		now := v.Now()
		return store.ArrayValue(store.IntValue(now.Unix()), store.IntValue(int64(now.Nanosecond()/1000))), nil
	})

// storeNow reads the store's clock through clockScript.
func storeNow(ctx context.Context, s store.Store) (time.Time, error) {
	v, err := s.Eval(ctx, clockScript, nil)
	if err != nil {
		return time.Time{}, err
	}
	if v.Kind != store.KindArray || len(v.Array) != 2 {
		return time.Time{}, fmt.Errorf("clock script returned %s", v)
	}
	return time.Unix(v.Array[0].Int, v.Array[1].Int*1000).UTC(), nil
}

// valuesScript returns, by ARGV[1], one of the shapes Lua's conversion to
// RESP produces.
var valuesScript = store.NewScript("conformance-values", `
local w = ARGV[1]
if w == 'nested' then return {1, 'two', {3, ''}, false, 'after-false'} end
if w == 'stops-at-nil' then return {1, nil, 3} end
if w == 'true' then return true end
if w == 'false' then return false end
if w == 'nil' then return nil end
if w == 'float' then return 3.99 end
if w == 'negative-float' then return -3.99 end
if w == 'empty' then return {} end
if w == 'empty-string' then return '' end
if w == 'status' then return redis.status_reply('FINE') end
return redis.error_reply('UNKNOWN ' .. w)`,
	func(_ store.ScriptView, _, args []string) (store.Value, error) {
		switch args[0] {
		case "nested":
			return store.ArrayValue(store.IntValue(1), store.StringValue("two"),
				store.ArrayValue(store.IntValue(3), store.StringValue("")), store.NilValue(), store.StringValue("after-false")), nil
		case "stops-at-nil":
			return store.ArrayValue(store.IntValue(1)), nil
		case "true":
			return store.BoolValue(true), nil
		case "false":
			return store.BoolValue(false), nil
		case "nil":
			return store.NilValue(), nil
		case "float":
			return store.IntValue(3), nil
		case "negative-float":
			return store.IntValue(-3), nil
		case "empty":
			return store.ArrayValue(), nil
		case "empty-string":
			return store.StringValue(""), nil
		case "status":
			return store.StringValue("FINE"), nil
		}
		return store.Value{}, &store.ScriptError{Message: "UNKNOWN " + args[0]}
	})

func setString(val string, ttl time.Duration, key int) func(context.Context, store.Store, []string) error {
	return func(ctx context.Context, s store.Store, keys []string) error {
		return s.Set(ctx, keys[key], []byte(val), ttl)
	}
}

func testScriptBodiesAgree(e *env) {
	keys := []string{"counter", "audit"}
	CheckScript(e.t, e.h, casScript, []ScriptCase{
		{Name: "fresh", Keys: keys, Args: []string{"0", "60000", "a"}},
		{Name: "match", Keys: keys, Args: []string{"41", "60000", "b"}, Setup: setString("41", 0, 0)},
		{Name: "match-with-ttl", Keys: keys, Args: []string{"7", "5000", "c"}, Setup: setString("7", time.Hour, 0)},
		{Name: "conflict", Keys: keys, Args: []string{"4", "60000", "c"}, Setup: setString("5", time.Hour, 0)},
		{Name: "wrong-type", Keys: keys, Args: []string{"0", "60000", "d"},
			Setup: func(ctx context.Context, s store.Store, keys []string) error {
				return s.HSet(ctx, keys[0], map[string][]byte{"f": []byte("x")})
			}},
		{Name: "audit-wrong-type-writes-nothing", Keys: keys, Args: []string{"0", "60000", "e"}, Setup: setString("x", 0, 1)},
	})
}

func testScriptValues(e *env) {
	var cases []ScriptCase
	for _, w := range []string{"nested", "stops-at-nil", "true", "false", "nil", "float", "negative-float", "empty", "empty-string", "status", "bogus"} {
		cases = append(cases, ScriptCase{Name: w, Args: []string{w}})
	}
	CheckScript(e.t, e.h, valuesScript, cases)
}

func testScriptClock(e *env) {
	t := e.t
	if c, ok := e.clock(); ok {
		c.SetNow(farTime)
		got, err := storeNow(e.ctx, e.s)
		require.NoError(t, err)
		assert.True(t, farTime.Equal(got), "scripts see the store's clock, to the microsecond: set %v, script saw %v", farTime, got)
		return
	}
	got, err := storeNow(e.ctx, e.s)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), got, time.Minute, "the server's clock, seen from a script, is near this machine's")
}

func testScriptContention(e *env) {
	t, ctx, s := e.t, e.ctx, e.s
	keys := []string{e.tagged("counter"), e.tagged("audit")}
	const goroutines, each = 64, 3
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	var failed atomic.Value
	for g := range goroutines {
		wg.Go(func() {
			for done := 0; done < each; {
				cur := "0"
				if v, err := s.Get(ctx, keys[0]); err == nil {
					cur = string(v)
				} else if !errors.Is(err, store.ErrNotFound) {
					failed.Store(err)
					return
				}
				_, err := s.Eval(ctx, casScript, keys, cur, "60000", strconv.Itoa(g))
				var se *store.ScriptError
				switch {
				case err == nil:
					done++
				case errors.As(err, &se) && len(se.Message) >= 8 && se.Message[:8] == "CONFLICT":
					conflicts.Add(1)
				default:
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, keys[0])
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(goroutines*each), string(v), "compare-and-increment stays exact under contention")
	t.Logf("%d increments, %d conflicts retried", goroutines*each, conflicts.Load())
}
