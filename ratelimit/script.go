package ratelimit

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/karat-go/karat/store"
)

// Script modes (ARGV[1]).
const (
	modeTake   = "t"
	modePeek   = "p"
	modeRefund = "r"
)

// Algorithm codes in the script's arguments.
const (
	algGCRA    = "g"
	algSliding = "s"
)

// argsPerKey is how many arguments each key takes after the mode: the
// algorithm, two numbers that depend on it, and the cost.
const argsPerKey = 4

// decideLua decides every policy of one subject at once, on the store's
// clock (microseconds), and writes only when every one admits (mode "t").
// Mode "p" writes nothing; mode "r" gives a cost back (a refund).
//
// Per key: ARGV alg, a, b, cost. GCRA: a = emission interval T, b = burst
// tolerance tau = burst*T; the key holds the theoretical arrival time (TAT),
// or is empty when gcraTakeMsLua wrote it: then the TAT is its expiry.
// Sliding window: a = window W (a whole number of ms), b = limit; the key
// holds "index:current:previous" counts of the fixed windows.
//
// Returns {all, ok1, remaining1, reset1, retry1, ok2, ...}; times in µs,
// retry -1 when the cost can never be admitted.
const decideLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
if #ARGV ~= 1 + 4 * #KEYS then
  return redis.error_reply('BADARGS karat-ratelimit-decide')
end
local out = {1}
local wv, wt = {}, {}
local all = true
for i = 1, #KEYS do
  local j = 2 + (i - 1) * 4
  local alg, a, b, cost = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])
  if not (a and b and cost) or a <= 0 then
    return redis.error_reply('BADARGS karat-ratelimit-decide')
  end
  local raw = redis.call('GET', KEYS[i])
  local ok, rem, reset, retry = 0, 0, 0, 0
  if alg == 'g' then
    local tat = now
    if raw == '' then
      local p = redis.call('PTTL', KEYS[i])
      if p > 0 then tat = now + p * 1000 end
    elseif raw and string.match(raw, '^%d+$') then
      local x = tonumber(raw)
      if x > now then tat = x end
    end
    local used = tat - now
    local diff = used + cost * a
    local free = 0
    if b > used then free = math.floor((b - used) / a) end
    reset = used
    rem = free
    if mode == 'r' then
      local back = used - cost * a
      if back > 0 then
        wv[i] = string.format('%d', now + back)
        wt[i] = back
      else
        wv[i] = false
      end
    elseif cost * a > b then
      retry = -1
    elseif diff <= b then
      ok = 1
      if mode == 't' then
        rem = math.floor((b - diff) / a)
        reset = diff
        wv[i] = string.format('%d', now + diff)
        wt[i] = diff
      end
    else
      retry = diff - b
    end
  else
    local W, L = a, b
    local Wm = W / 1000
    local idx = math.floor(now / W)
    local start = idx * W
    local c, p = 0, 0
    if raw then
      local si, sc, sp = string.match(raw, '^(%d+):(%d+):(%d+)$')
      if si then
        si = tonumber(si)
        if si == idx then
          c = tonumber(sc)
          p = tonumber(sp)
        elseif si == idx - 1 then
          p = tonumber(sc)
        end
      end
    end
    local em = math.floor((now - start) / 1000)
    local est = c + math.ceil(p * (Wm - em) / Wm)
    if L > est then rem = L - est end
    if mode == 'r' then
      if c >= cost then
        c = c - cost
      else
        p = p - (cost - c)
        if p < 0 then p = 0 end
        c = 0
      end
      wv[i] = false
    elseif cost > L then
      retry = -1
    elseif est + cost <= L then
      ok = 1
      if mode == 't' then
        c = c + cost
        rem = L - est - cost
      end
    elseif c + cost <= L then
      local e = Wm - math.floor((L - c - cost) * Wm / p)
      retry = start + e * 1000 - now
    else
      local e = Wm - math.floor((L - cost) * Wm / c)
      if e < 0 then e = 0 end
      retry = start + W + e * 1000 - now
    end
    if c > 0 then
      reset = start + 2 * W - now
    elseif p > 0 then
      reset = start + W - now
    end
    if (mode == 't' and ok == 1) or mode == 'r' then
      if reset > 0 then
        wv[i] = string.format('%d:%d:%d', idx, c, p)
        wt[i] = reset
      else
        wv[i] = false
      end
    end
  end
  if ok == 0 then all = false end
  out[#out + 1] = ok
  out[#out + 1] = rem
  out[#out + 1] = reset
  out[#out + 1] = retry
end
if (mode == 't' and all) or mode == 'r' then
  for i = 1, #KEYS do
    if wv[i] then
      redis.call('SET', KEYS[i], wv[i], 'PX', string.format('%d', math.ceil(wt[i] / 1000)))
    elseif wv[i] == false then
      redis.call('DEL', KEYS[i])
    end
  end
end
if not all then out[1] = 0 end
return out
`

// decideScript is decideLua with its Go twin, run by the memory driver.
var decideScript = store.NewScript("karat-ratelimit-decide", decideLua, decideGo)

// DecideScript returns the script every decision runs, so that
// conformance.CheckScript can prove its Lua and Go bodies equal.
func DecideScript() *store.Script { return decideScript }

// write is one pending write of decideGo: set val for ttl µs, or delete.
type write struct {
	set bool
	val string
	ttl int64
	del bool
}

func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func errArgs() error {
	return &store.ScriptError{Message: "BADARGS karat-ratelimit-decide"}
}

func decideGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	if len(args) != 1+argsPerKey*len(keys) {
		return store.Value{}, errArgs()
	}
	now := v.Now().UnixMicro()
	mode := args[0]
	out := make([]store.Value, 1, 1+4*len(keys))
	out[0] = store.IntValue(1)
	writes := make([]write, len(keys))
	all := true
	for i, key := range keys {
		j := 1 + i*argsPerKey
		alg := args[j]
		a, err1 := strconv.ParseInt(args[j+1], 10, 64)
		b, err2 := strconv.ParseInt(args[j+2], 10, 64)
		cost, err3 := strconv.ParseInt(args[j+3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || a <= 0 {
			return store.Value{}, errArgs()
		}
		raw, err := v.Get(key)
		present := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Value{}, err
		}
		var ok, rem, reset, retry int64
		if alg == algGCRA {
			tat := now
			switch {
			case present && len(raw) == 0: // gcraTakeMsLua's state: the TAT is the expiry
				ttl, err := v.TTL(key)
				if err != nil {
					return store.Value{}, err
				}
				if ms := ttl.Milliseconds(); ms > 0 {
					tat = now + ms*1000
				}
			case present:
				if x, good := parseDigits(string(raw)); good && x > now {
					tat = x
				}
			}
			used := tat - now
			diff := used + cost*a
			if b > used {
				rem = (b - used) / a
			}
			reset = used
			switch {
			case mode == modeRefund:
				if back := used - cost*a; back > 0 {
					writes[i] = write{set: true, val: strconv.FormatInt(now+back, 10), ttl: back}
				} else {
					writes[i] = write{del: true}
				}
			case cost*a > b:
				retry = -1
			case diff <= b:
				ok = 1
				if mode == modeTake {
					rem = (b - diff) / a
					reset = diff
					writes[i] = write{set: true, val: strconv.FormatInt(now+diff, 10), ttl: diff}
				}
			default:
				retry = diff - b
			}
		} else {
			w, l := a, b
			wm := w / 1000
			idx := now / w
			start := idx * w
			var c, p int64
			if present {
				if si, sc, sp, good := parseWindows(string(raw)); good {
					switch si {
					case idx:
						c, p = sc, sp
					case idx - 1:
						p = sc
					}
				}
			}
			em := (now - start) / 1000
			est := c + (p*(wm-em)+wm-1)/wm
			if l > est {
				rem = l - est
			}
			switch {
			case mode == modeRefund:
				if c >= cost {
					c -= cost
				} else {
					p = max(0, p-(cost-c))
					c = 0
				}
				writes[i] = write{del: true}
			case cost > l:
				retry = -1
			case est+cost <= l:
				ok = 1
				if mode == modeTake {
					c += cost
					rem = l - est - cost
				}
			case c+cost <= l:
				e := wm - (l-c-cost)*wm/p
				retry = start + e*1000 - now
			default:
				e := max(0, wm-(l-cost)*wm/c)
				retry = start + w + e*1000 - now
			}
			switch {
			case c > 0:
				reset = start + 2*w - now
			case p > 0:
				reset = start + w - now
			}
			if (mode == modeTake && ok == 1) || mode == modeRefund {
				if reset > 0 {
					writes[i] = write{set: true, val: strconv.FormatInt(idx, 10) + ":" + strconv.FormatInt(c, 10) + ":" + strconv.FormatInt(p, 10), ttl: reset}
				} else {
					writes[i] = write{del: true}
				}
			}
		}
		if ok == 0 {
			all = false
		}
		out = append(out, store.IntValue(ok), store.IntValue(rem), store.IntValue(reset), store.IntValue(retry))
	}
	if (mode == modeTake && all) || mode == modeRefund {
		for i, w := range writes {
			switch {
			case w.set:
				ms := (w.ttl + 999) / 1000
				if err := v.Set(keys[i], []byte(w.val), time.Duration(ms)*time.Millisecond); err != nil {
					return store.Value{}, err
				}
			case w.del:
				if _, err := v.Delete(keys[i]); err != nil {
					return store.Value{}, err
				}
			}
		}
	}
	if !all {
		out[0] = store.IntValue(0)
	}
	return store.ArrayValue(out...), nil
}

// parseWindows reads "index:current:previous".
func parseWindows(s string) (idx, cur, prev int64, ok bool) {
	a, rest, ok1 := strings.Cut(s, ":")
	b, c, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	var g1, g2, g3 bool
	idx, g1 = parseDigits(a)
	cur, g2 = parseDigits(b)
	prev, g3 = parseDigits(c)
	return idx, cur, prev, g1 && g2 && g3
}

// gcraTakeLua is the hot path: one GCRA policy on one subject, charged when
// admitted. It is decideLua specialised (same result layout, same writes),
// with fewer Lua operations, since on a busy Redis the script's own cost is
// a large share of a decision. ARGV: interval T, tau, cost.
const gcraTakeLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local a, b, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if #ARGV ~= 3 or not (a and b and cost) or a <= 0 then
  return redis.error_reply('BADARGS karat-ratelimit-gcra')
end
local tat = now
local raw = redis.call('GET', KEYS[1])
if raw and string.match(raw, '^%d+$') then
  local x = tonumber(raw)
  if x > now then tat = x end
end
local used = tat - now
local diff = used + cost * a
if cost * a > b then
  local free = 0
  if b > used then free = math.floor((b - used) / a) end
  return {0, 0, free, used, -1}
end
if diff <= b then
  redis.call('SET', KEYS[1], string.format('%d', now + diff), 'PX', string.format('%d', math.ceil(diff / 1000)))
  return {1, 1, math.floor((b - diff) / a), diff, 0}
end
local free = 0
if b > used then free = math.floor((b - used) / a) end
return {0, 0, free, used, diff - b}
`

// gcraTakeScript is gcraTakeLua with its Go twin.
var gcraTakeScript = store.NewScript("karat-ratelimit-gcra", gcraTakeLua, gcraTakeGo)

// GCRATakeScript returns the hot-path script (one GCRA policy, charged), so
// that conformance.CheckScript can prove its Lua and Go bodies equal.
func GCRATakeScript() *store.Script { return gcraTakeScript }

func gcraTakeGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	a, b, cost, err := takeArgs("karat-ratelimit-gcra", keys, args)
	if err != nil {
		return store.Value{}, err
	}
	now := v.Now().UnixMicro()
	tat := now
	raw, err := v.Get(keys[0])
	switch {
	case err == nil:
		if x, ok := parseDigits(string(raw)); ok && x > now {
			tat = x
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.Value{}, err
	}
	used := tat - now
	diff := used + cost*a
	var free int64
	if b > used {
		free = (b - used) / a
	}
	if cost*a > b {
		return store.ArrayValue(store.IntValue(0), store.IntValue(0), store.IntValue(free), store.IntValue(used), store.IntValue(-1)), nil
	}
	if diff <= b {
		ms := (diff + 999) / 1000
		if err := v.Set(keys[0], []byte(strconv.FormatInt(now+diff, 10)), time.Duration(ms)*time.Millisecond); err != nil {
			return store.Value{}, err
		}
		return store.ArrayValue(store.IntValue(1), store.IntValue(1), store.IntValue((b-diff)/a), store.IntValue(diff), store.IntValue(0)), nil
	}
	return store.ArrayValue(store.IntValue(0), store.IntValue(0), store.IntValue(free), store.IntValue(used), store.IntValue(diff-b)), nil
}

// takeArgs parses the hot-path scripts' arguments: one key; interval,
// tolerance and cost, the interval positive. A failure is the script's
// BADARGS error, named.
func takeArgs(name string, keys, args []string) (a, b, cost int64, err error) {
	if len(args) != 3 || len(keys) != 1 {
		return 0, 0, 0, &store.ScriptError{Message: "BADARGS " + name}
	}
	a, err1 := strconv.ParseInt(args[0], 10, 64)
	b, err2 := strconv.ParseInt(args[1], 10, 64)
	cost, err3 := strconv.ParseInt(args[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || a <= 0 {
		return 0, 0, 0, &store.ScriptError{Message: "BADARGS " + name}
	}
	return a, b, cost, nil
}

// gcraTakeMsLua is the hot path for a GCRA policy whose interval and burst
// tolerance are whole milliseconds (every preset, and any rate of up to
// 1,000 a second with a whole-millisecond interval): the theoretical
// arrival time is kept as the key's expiry, and the key's value is empty.
// The time the bucket has used is then the key's PTTL, read on the
// server's clock, so the script needs neither TIME nor GET: PTTL and SET,
// the two commands of the floor it is measured against (BENCHMARKS.md),
// where gcraTakeLua sends three and parses and formats the TAT. It returns
// one integer, from which the caller, who knows the policy, derives the
// whole decision (msDecision): the used time after the admission (at
// least 1) when admitted, or -1 - the used time when denied.
//
// Decisions are made on the server's millisecond clock: Redis keeps
// expiries in whole milliseconds, so the bucket's state is exact to the
// millisecond, which such a policy needs. A key in the other state (a TAT
// in microseconds, written by decideLua) is read by its PTTL too: its TTL
// was rounded up, so the bucket looks at most a millisecond fuller than it
// is, never emptier; so is a foreign value, whose TTL counts as used time
// (the TIME script would read it as an empty bucket). decideLua reads an
// empty value as this state.
//
// ARGV: interval T and tau in milliseconds, cost.
const gcraTakeMsLua = `
local a, b, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if #ARGV ~= 3 or not (a and b and cost) or a <= 0 then
  return redis.error_reply('BADARGS karat-ratelimit-gcra-ms')
end
local used = redis.call('PTTL', KEYS[1])
if used < 0 then used = 0 end
if cost <= math.floor(b / a) then
  local diff = used + cost * a
  if diff <= b then
    redis.call('SET', KEYS[1], '', 'PX', diff)
    return diff
  end
end
return -1 - used
`

// gcraTakeMsScript is gcraTakeMsLua with its Go twin.
var gcraTakeMsScript = store.NewScript("karat-ratelimit-gcra-ms", gcraTakeMsLua, gcraTakeMsGo)

// GCRATakeMsScript returns the hot-path script for policies of whole
// milliseconds, so that conformance.CheckScript can prove its Lua and Go
// bodies equal.
func GCRATakeMsScript() *store.Script { return gcraTakeMsScript }

func gcraTakeMsGo(v store.ScriptView, keys, args []string) (store.Value, error) {
	a, b, cost, err := takeArgs("karat-ratelimit-gcra-ms", keys, args)
	if err != nil {
		return store.Value{}, err
	}
	var used int64
	switch ttl, err := v.TTL(keys[0]); {
	case err == nil:
		used = ttl.Milliseconds() // 0 for a key without expiry, as PTTL's -1
	case !errors.Is(err, store.ErrNotFound):
		return store.Value{}, err
	}
	if cost <= b/a {
		if diff := used + cost*a; diff <= b {
			if err := v.Set(keys[0], []byte{}, time.Duration(diff)*time.Millisecond); err != nil {
				return store.Value{}, err
			}
			return store.IntValue(diff), nil
		}
	}
	return store.IntValue(-1 - used), nil
}

// msDecision fills d from gcraTakeMsScript's result r for a policy of
// interval a and tolerance b (ms) and the request's cost, as gcraTakeMsLua
// would have in gcraTakeLua's layout. It reports false for a result no
// version of the script returns.
func msDecision(d *Decision, r, a, b, cost int64) bool {
	const ms = time.Millisecond
	if r >= 1 { // admitted; r is the used time after it
		if r > b {
			return false
		}
		d.Allowed = true
		d.Remaining = (b - r) / a
		d.ResetAfter = time.Duration(r) * ms
		return true
	}
	used := -1 - r
	if used < 0 {
		return false
	}
	if b > used {
		d.Remaining = (b - used) / a
	}
	d.ResetAfter = time.Duration(used) * ms
	if cost > b/a {
		d.Never = true
	} else {
		d.RetryAfter = time.Duration(used+cost*a-b) * ms
	}
	return true
}

// gcraUpdate is gcraTakeGo (Args[3] 1: take) or decideGo's GCRA peek
// (Args[3] 0) as a store.Int64Func, for stores that decide in process:
// Args are T, tau, the cost, take and the burst (tau/T); the key holds the
// TAT; Result is ok,
// remaining, reset and retry (-1: never), all in µs, exactly what the
// scripts return, and the write (the TAT with a TTL of the time until the
// bucket is full again, in whole milliseconds rounded up) is theirs.
// cost*T > tau is tested as cost > burst, without multiplying, so a huge
// cost is "never" (as in Lua's doubles) instead of an overflow.
func gcraUpdate(u store.Int64Update) store.Int64Update {
	a, b, cost := u.Args[0], u.Args[1], u.Args[2]
	now := u.Now.UnixMicro()
	tat := now
	if u.Found && u.Value > now {
		tat = u.Value
	}
	used := tat - now
	free := func() int64 {
		if b > used {
			return (b - used) / a
		}
		return 0
	}
	u.Op = store.Int64Keep
	if cost > u.Args[4] {
		u.Result = [4]int64{0, free(), used, -1}
		return u
	}
	diff := used + cost*a
	switch {
	case diff > b:
		u.Result = [4]int64{0, free(), used, diff - b}
	case u.Args[3] == 1:
		u.Op, u.New, u.TTL = store.Int64Set, now+diff, time.Duration((diff+999)/1000)*time.Millisecond
		u.Result = [4]int64{1, (b - diff) / a, diff, 0}
	default:
		u.Result = [4]int64{1, free(), used, 0}
	}
	return u
}
