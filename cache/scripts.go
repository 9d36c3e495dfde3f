package cache

import (
	"errors"
	"strconv"
	"time"

	"github.com/karat-go/karat/store"
)

// The cache's atomic steps. They are exported so that the conformance suite
// (conformance.CheckScript) can prove that each one's Lua and Go bodies
// agree; applications have no reason to call them.
var (
	// FillScript stores a loaded value only if the load is still current:
	// KEYS = entry, lease, generation keys...; ARGV = lease token, entry
	// bytes, TTL in ms, the generations the load began under (decimal, "0"
	// for a missing key)... It returns 1 when it stored the entry and
	// released the lease; 0 when the lease is no longer the caller's (a Set,
	// a Delete, a Clear or an expiry took it: nothing is written); -1 when a
	// generation moved since the load began (the lease is released, nothing
	// else is written). These are the leases of memcache at Facebook (Nishtala
	// et al., NSDI '13): a load that began before an invalidation or a newer
	// write never stores its older value after it.
	FillScript = store.NewScript("karat-cache-fill", `
`+luaMS+`
if not ms(ARGV[3]) then return redis.error_reply('ERR karat-cache: bad ttl') end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  local g = redis.call('GET', KEYS[i]) or '0'
  if g ~= ARGV[i + 1] then
    redis.call('DEL', KEYS[2])
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1`, fillGo)

	// AcquireScript reads an entry and its generations and tries to take
	// its lease, in one step: KEYS = entry, lease, generation keys...; ARGV
	// = lease token, lease TTL in ms. It returns {1 if the lease is now the
	// token's else 0, the entry or nil, each generation ("0" for a missing
	// key)...}. The caller loads only if it won the lease and the entry it
	// got is not usable; the generations are those its load begins under.
	AcquireScript = store.NewScript("karat-cache-acquire", `
`+luaMS+`
if not ms(ARGV[2]) then return redis.error_reply('ERR karat-cache: bad ttl') end
local res = {0, redis.call('GET', KEYS[1])}
for i = 3, #KEYS do
  res[i] = redis.call('GET', KEYS[i]) or '0'
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then res[1] = 1 end
return res`, acquireGo)

	// SetScript writes an entry and removes the key's lease in one step, so
	// that a load in flight can no longer store its (older) value: KEYS =
	// entry, lease; ARGV = entry bytes, TTL in ms. It returns 1.
	SetScript = store.NewScript("karat-cache-set", `
`+luaMS+`
if not ms(ARGV[2]) then return redis.error_reply('ERR karat-cache: bad ttl') end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1`, setGo)

	// SetManyScript is SetScript for n entries of one tenant: KEYS = n
	// entries then their n leases; ARGV = entry bytes and TTL in ms for each
	// entry in turn. It returns n.
	SetManyScript = store.NewScript("karat-cache-set-many", `
`+luaMS+`
if #KEYS % 2 ~= 0 or #ARGV ~= #KEYS then return redis.error_reply('ERR karat-cache: wrong number of keys or arguments') end
local n = #KEYS / 2
for i = 1, n do
  if not ms(ARGV[2 * i]) then return redis.error_reply('ERR karat-cache: bad ttl') end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i])
  redis.call('DEL', KEYS[n + i])
end
return n`, setManyGo)

	// ReleaseScript deletes a lease if it still holds the caller's token:
	// KEYS = lease; ARGV = token. It returns 1 if it deleted it, else 0.
	ReleaseScript = store.NewScript("karat-cache-release", `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`, releaseGo)
)

// luaMS is the Lua twin of parseMS.
const luaMS = `local function ms(a)
  local n = tonumber(a)
  if not n or n < 1 or n ~= math.floor(n) then return nil end
  return n
end`

var errScriptArgs = &store.ScriptError{Message: "ERR karat-cache: wrong number of keys or arguments"}

func getOr(v store.ScriptView, key, missing string) (string, bool, error) {
	b, err := v.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return missing, false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

func parseMS(s string) (time.Duration, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return 0, &store.ScriptError{Message: "ERR karat-cache: bad ttl"}
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func fillGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	if len(keys) < 2 || len(args) != len(keys)+1 {
		return store.Value{}, errScriptArgs
	}
	ttl, err := parseMS(args[2])
	if err != nil {
		return store.Value{}, err
	}
	lease, found, err := getOr(v, keys[1], "")
	if err != nil {
		return store.Value{}, err
	}
	if !found || lease != args[0] {
		return store.IntValue(0), nil
	}
	for i := 2; i < len(keys); i++ {
		g, _, err := getOr(v, keys[i], "0")
		if err != nil {
			return store.Value{}, err
		}
		if g != args[i+1] {
			if _, err := v.Delete(keys[1]); err != nil {
				return store.Value{}, err
			}
			return store.IntValue(-1), nil
		}
	}
	if err := v.Set(keys[0], []byte(args[1]), ttl); err != nil {
		return store.Value{}, err
	}
	if _, err := v.Delete(keys[1]); err != nil {
		return store.Value{}, err
	}
	return store.IntValue(1), nil
}

func setGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	if len(keys) != 2 || len(args) != 2 {
		return store.Value{}, errScriptArgs
	}
	ttl, err := parseMS(args[1])
	if err != nil {
		return store.Value{}, err
	}
	if err := v.Set(keys[0], []byte(args[0]), ttl); err != nil {
		return store.Value{}, err
	}
	if _, err := v.Delete(keys[1]); err != nil {
		return store.Value{}, err
	}
	return store.IntValue(1), nil
}

func setManyGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	n := len(keys) / 2
	if len(keys)%2 != 0 || len(args) != 2*n {
		return store.Value{}, errScriptArgs
	}
	ttls := make([]time.Duration, n)
	for i := range n {
		ttl, err := parseMS(args[2*i+1])
		if err != nil {
			return store.Value{}, err
		}
		ttls[i] = ttl
	}
	for i := range n {
		if err := v.Set(keys[i], []byte(args[2*i]), ttls[i]); err != nil {
			return store.Value{}, err
		}
		if _, err := v.Delete(keys[n+i]); err != nil {
			return store.Value{}, err
		}
	}
	return store.IntValue(int64(n)), nil
}

func releaseGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	if len(keys) != 1 || len(args) != 1 {
		return store.Value{}, errScriptArgs
	}
	lease, found, err := getOr(v, keys[0], "")
	if err != nil {
		return store.Value{}, err
	}
	if !found || lease != args[0] {
		return store.IntValue(0), nil
	}
	if _, err := v.Delete(keys[0]); err != nil {
		return store.Value{}, err
	}
	return store.IntValue(1), nil
}

func acquireGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	if len(keys) < 2 || len(args) != 2 {
		return store.Value{}, errScriptArgs
	}
	ttl, err := parseMS(args[1])
	if err != nil {
		return store.Value{}, err
	}
	res := make([]store.Value, 2, len(keys))
	res[0] = store.IntValue(0)
	entry, err := v.Get(keys[0])
	switch {
	case err == nil:
		res[1] = store.BytesValue(entry)
	case errors.Is(err, store.ErrNotFound):
		res[1] = store.NilValue()
	default:
		return store.Value{}, err
	}
	for _, g := range keys[2:] {
		gen, _, err := getOr(v, g, "0")
		if err != nil {
			return store.Value{}, err
		}
		res = append(res, store.StringValue(gen))
	}
	won, err := v.SetNX(keys[1], []byte(args[0]), ttl)
	if err != nil {
		return store.Value{}, err
	}
	if won {
		res[0] = store.IntValue(1)
	}
	return store.ArrayValue(res...), nil
}
