package sessionrec

import (
	"errors"
	"strconv"
	"time"

	"github.com/karat-go/karat/store"
)

// Error messages the scripts raise (the first word is the code). Each has
// more than one word: Redis 7 prefixes a one-word error reply with "ERR".
const (
	MsgNotFound = "NOTFOUND no live session"
	MsgConflict = "CONFLICT version moved on"
	MsgExists   = "EXISTS session id taken"
	MsgRetry    = "RETRY index changed"
	MsgKeep     = "NOTFOUND keep"
	MsgDeadline = "INVALID deadline not after now"
)

// Revocation modes of the Revoke and RevokeMany scripts.
const (
	ModeToken   = "token"   // Revoke: by a token's hash (current, or previous within its grace)
	ModeID      = "id"      // Revoke: by id, for the user named
	ModeAll     = "all"     // RevokeMany: every session of the user
	ModeOthers  = "others"  // RevokeMany: all but the one the kept token names
	ModeExpired = "expired" // RevokeMany: only expired sessions (pruning)
)

// Counter fields of a shard's counter hash.
const (
	CountCreated = "created"
	CountRevoked = "revoked"
	CountExpired = "expired"
)

// prelude holds the Lua helpers every script shares: dec/enc mirror
// Decode/Append, deadline mirrors Record.Deadline, holds says whether a
// token hash names the session (current, or previous within its grace).
const prelude = `
local function dec(s)
  if not s then return nil end
  local f, pos = {}, 1
  while pos <= #s do
    local c = string.find(s, ':', pos, true)
    if not c then return nil end
    local n = tonumber(string.sub(s, pos, c - 1))
    if not n or c + n > #s then return nil end
    f[#f + 1] = string.sub(s, c + 1, c + n)
    pos = c + n + 1
  end
  if #f ~= 16 or f[1] ~= 's1' then return nil end
  return f
end
local function enc(f)
  local out = {}
  for i = 1, #f do out[i] = #f[i] .. ':' .. f[i] end
  return table.concat(out)
end
local function deadline(f)
  return math.min(tonumber(f[10]) + tonumber(f[11]), tonumber(f[12]))
end
local function holds(f, h, now)
  return h ~= '' and (f[5] == h or (f[6] == h and now < tonumber(f[7])))
end
local function bump(key, field, by)
  if by == 0 then return end
  local v = tonumber(redis.call('HGET', key, field) or '0')
  redis.call('HSET', key, field, tostring(v + by))
end
`

func ms(d int64) time.Duration { return time.Duration(d) * time.Millisecond }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func notFound() error { return &store.ScriptError{Message: MsgNotFound} }

// getRecord reads and decodes a record; ok is false for a missing or
// malformed one.
func getRecord(v store.ScriptView, key string) (Record, string, bool, error) {
	b, err := v.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, "", false, nil
	}
	if err != nil {
		return Record{}, "", false, err
	}
	s := string(b)
	r, ok := Decode(s)
	return r, s, ok, nil
}

func bump(v store.ScriptView, key, field string, by int64) error {
	if by == 0 {
		return nil
	}
	var cur int64
	b, err := v.HGet(key, field)
	switch {
	case err == nil:
		if cur, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return store.ErrNotInteger
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	return v.HSet(key, map[string][]byte{field: []byte(itoa(cur + by))})
}

func holds(r *Record, h string, now int64) bool {
	return h != "" && (r.Cur == h || (r.Prev == h && now < r.PrevUntil))
}

func parseArgs(args ...string) ([]int64, error) {
	out := make([]int64, len(args))
	for i, a := range args {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, &store.ScriptError{Message: "ERR bad number " + strconv.Quote(a)}
		}
		out[i] = n
	}
	return out, nil
}

// Create writes a new session. KEYS: record, user index, shard live index,
// shard counters. ARGV: the encoded record, its id, now (ms), its deadline
// (ms), its user. It refuses an id in use (EXISTS) and a deadline not after
// now, and returns 1.
var Create = store.NewScript("karat-session-create", prelude+`
local now, dl = tonumber(ARGV[3]), tonumber(ARGV[4])
if dl <= now then return redis.error_reply('`+MsgDeadline+`') end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('`+MsgExists+`') end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tostring(dl - now))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4] .. ':' .. ARGV[5])
bump(KEYS[4], '`+CountCreated+`', 1)
return 1`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		n, err := parseArgs(args[2], args[3])
		if err != nil {
			return store.Value{}, err
		}
		now, dl := n[0], n[1]
		if dl <= now {
			return store.Value{}, &store.ScriptError{Message: MsgDeadline}
		}
		if _, err := v.TTL(keys[0]); err == nil {
			return store.Value{}, &store.ScriptError{Message: MsgExists}
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.Value{}, err
		}
		if err := v.Set(keys[0], []byte(args[0]), ms(dl-now)); err != nil {
			return store.Value{}, err
		}
		if err := v.HSet(keys[1], map[string][]byte{args[1]: []byte(args[3])}); err != nil {
			return store.Value{}, err
		}
		if err := v.HSet(keys[2], map[string][]byte{args[1]: []byte(args[3] + ":" + args[4])}); err != nil {
			return store.Value{}, err
		}
		if err := bump(v, keys[3], CountCreated, 1); err != nil {
			return store.Value{}, err
		}
		return store.IntValue(1), nil
	})

// Touch records activity. KEYS: record, user index, shard live index. ARGV:
// the token's hash, now (ms), the touch interval (ms; 0 always writes). It
// raises NOTFOUND unless the hash is the record's current one and the
// session is live: a revoked, rotated-away or expired session is never
// written. Within the interval since the last recorded activity (or when
// now is not after it) it writes nothing. It returns the record as it now is.
var Touch = store.NewScript("karat-session-touch", prelude+`
local r = redis.call('GET', KEYS[1])
local f = dec(r)
local now = tonumber(ARGV[2])
if not f or f[5] ~= ARGV[1] or now >= deadline(f) then return redis.error_reply('`+MsgNotFound+`') end
local last = tonumber(f[10])
if now - last < tonumber(ARGV[3]) or now <= last then return r end
f[10] = ARGV[2]
local dl = deadline(f)
local nr = enc(f)
redis.call('SET', KEYS[1], nr, 'PX', tostring(dl - now))
redis.call('HSET', KEYS[2], f[2], tostring(dl))
redis.call('HSET', KEYS[3], f[2], tostring(dl) .. ':' .. f[3])
return nr`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		n, err := parseArgs(args[1], args[2])
		if err != nil {
			return store.Value{}, err
		}
		now, interval := n[0], n[1]
		r, raw, ok, err := getRecord(v, keys[0])
		if err != nil {
			return store.Value{}, err
		}
		if !ok || r.Cur != args[0] || now >= r.Deadline() {
			return store.Value{}, notFound()
		}
		if now-r.LastSeen < interval || now <= r.LastSeen {
			return store.StringValue(raw), nil
		}
		r.LastSeen = now
		dl := r.Deadline()
		nr := r.Append(nil)
		if err := v.Set(keys[0], nr, ms(dl-now)); err != nil {
			return store.Value{}, err
		}
		if err := v.HSet(keys[1], map[string][]byte{r.ID: []byte(itoa(dl))}); err != nil {
			return store.Value{}, err
		}
		if err := v.HSet(keys[2], map[string][]byte{r.ID: []byte(LiveValue(dl, r.User))}); err != nil {
			return store.Value{}, err
		}
		return store.BytesValue(nr), nil
	})

// Update replaces the app's data if the version matches. KEYS: record.
// ARGV: the token's hash, now (ms), the expected version, the new data. It
// raises NOTFOUND unless the hash is the current one and the session is
// live, CONFLICT when the version moved on; it returns the new version.
var Update = store.NewScript("karat-session-update", prelude+`
local f = dec(redis.call('GET', KEYS[1]))
local now = tonumber(ARGV[2])
if not f or f[5] ~= ARGV[1] or now >= deadline(f) then return redis.error_reply('`+MsgNotFound+`') end
if f[8] ~= ARGV[3] then return redis.error_reply('`+MsgConflict+`') end
f[8] = tostring(tonumber(f[8]) + 1)
f[16] = ARGV[4]
redis.call('SET', KEYS[1], enc(f), 'PX', tostring(deadline(f) - now))
return tonumber(f[8])`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		n, err := parseArgs(args[1])
		if err != nil {
			return store.Value{}, err
		}
		now := n[0]
		r, _, ok, err := getRecord(v, keys[0])
		if err != nil {
			return store.Value{}, err
		}
		if !ok || r.Cur != args[0] || now >= r.Deadline() {
			return store.Value{}, notFound()
		}
		if itoa(r.Version) != args[2] {
			return store.Value{}, &store.ScriptError{Message: MsgConflict}
		}
		r.Version++
		r.Data = args[3]
		if err := v.Set(keys[0], r.Append(nil), ms(r.Deadline()-now)); err != nil {
			return store.Value{}, err
		}
		return store.IntValue(r.Version), nil
	})

// Rotate replaces the token. KEYS: record. ARGV: the old token's hash (it
// must be the current one), the new one's, now (ms), the grace (ms) during
// which the old one still validates (0: none). It raises NOTFOUND unless
// the session is live; it returns the record as it now is.
var Rotate = store.NewScript("karat-session-rotate", prelude+`
local f = dec(redis.call('GET', KEYS[1]))
local now = tonumber(ARGV[3])
if not f or f[5] ~= ARGV[1] or now >= deadline(f) then return redis.error_reply('`+MsgNotFound+`') end
local grace = tonumber(ARGV[4])
if grace > 0 then
  f[6] = ARGV[1]
  f[7] = tostring(now + grace)
else
  f[6] = ''
  f[7] = '0'
end
f[5] = ARGV[2]
local nr = enc(f)
redis.call('SET', KEYS[1], nr, 'PX', tostring(deadline(f) - now))
return nr`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		n, err := parseArgs(args[2], args[3])
		if err != nil {
			return store.Value{}, err
		}
		now, grace := n[0], n[1]
		r, _, ok, err := getRecord(v, keys[0])
		if err != nil {
			return store.Value{}, err
		}
		if !ok || r.Cur != args[0] || now >= r.Deadline() {
			return store.Value{}, notFound()
		}
		if grace > 0 {
			r.Prev, r.PrevUntil = args[0], now+grace
		} else {
			r.Prev, r.PrevUntil = "", 0
		}
		r.Cur = args[1]
		nr := r.Append(nil)
		if err := v.Set(keys[0], nr, ms(r.Deadline()-now)); err != nil {
			return store.Value{}, err
		}
		return store.BytesValue(nr), nil
	})

// Revoke ends one session. KEYS: record, user index, shard live index,
// shard counters. ARGV: the mode (token or id), the token's hash (token) or
// the user (id), the session id, now (ms). It returns {1, current hash,
// previous hash} when it revoked a live session, else 0; a record whose
// deadline passed, or that is gone while the user's index still names it,
// is removed and counted as expired.
var Revoke = store.NewScript("karat-session-revoke", prelude+`
local mode, who, sid, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local f = dec(redis.call('GET', KEYS[1]))
if not f then
  if redis.call('HDEL', KEYS[2], sid) == 1 and redis.call('HDEL', KEYS[3], sid) == 1 then
    bump(KEYS[4], '`+CountExpired+`', 1)
  end
  return 0
end
if (mode == '`+ModeToken+`' and not holds(f, who, now)) or (mode ~= '`+ModeToken+`' and f[3] ~= who) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], sid)
redis.call('HDEL', KEYS[3], sid)
if now >= deadline(f) then
  bump(KEYS[4], '`+CountExpired+`', 1)
  return 0
end
bump(KEYS[4], '`+CountRevoked+`', 1)
return {1, f[5], f[6]}`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		mode, who, sid := args[0], args[1], args[2]
		n, err := parseArgs(args[3])
		if err != nil {
			return store.Value{}, err
		}
		now := n[0]
		r, _, ok, err := getRecord(v, keys[0])
		if err != nil {
			return store.Value{}, err
		}
		if !ok {
			if err := pruneGone(v, keys[1], keys[2], keys[3], sid); err != nil {
				return store.Value{}, err
			}
			return store.IntValue(0), nil
		}
		if (mode == ModeToken && !holds(&r, who, now)) || (mode != ModeToken && r.User != who) {
			return store.IntValue(0), nil
		}
		if err := remove(v, keys[0], keys[1], keys[2], sid); err != nil {
			return store.Value{}, err
		}
		if now >= r.Deadline() {
			return store.IntValue(0), bump(v, keys[3], CountExpired, 1)
		}
		if err := bump(v, keys[3], CountRevoked, 1); err != nil {
			return store.Value{}, err
		}
		return store.ArrayValue(store.IntValue(1), store.StringValue(r.Cur), store.StringValue(r.Prev)), nil
	})

// pruneGone drops the index entries of a session whose record is gone, and
// counts it as expired if both indexes named it.
func pruneGone(v store.ScriptView, idx, live, counters, sid string) error {
	n, err := v.HDel(idx, sid)
	if err != nil || n != 1 {
		return err
	}
	if n, err = v.HDel(live, sid); err != nil || n != 1 {
		return err
	}
	return bump(v, counters, CountExpired, 1)
}

func remove(v store.ScriptView, rec, idx, live, sid string) error {
	if _, err := v.Delete(rec); err != nil {
		return err
	}
	if _, err := v.HDel(idx, sid); err != nil {
		return err
	}
	_, err := v.HDel(live, sid)
	return err
}

// RevokeMany ends several sessions of one user. KEYS: user index, shard
// live index, shard counters, then the record of each session named. ARGV:
// the mode (all, others, expired), now (ms), the kept token's hash (others),
// the user, then the id of each session named, in KEYS order. In modes all
// and others it raises RETRY if the index names a session the caller did not
// (one created since the caller read the index), and in mode others
// NOTFOUND if no live session of the user holds the kept hash; both before
// writing anything. It returns {revoked, expired, token hashes of the
// sessions removed...}.
var RevokeMany = store.NewScript("karat-session-revoke-many", prelude+`
local mode, now, keep, user = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = #KEYS - 3
if mode ~= '`+ModeExpired+`' then
  local named = {}
  for i = 1, n do named[ARGV[4 + i]] = true end
  local idx = redis.call('HGETALL', KEYS[1])
  for i = 1, #idx, 2 do
    if not named[idx[i]] then return redis.error_reply('`+MsgRetry+`') end
  end
end
local fs, sts, kept = {}, {}, 0
for i = 1, n do
  local f = dec(redis.call('GET', KEYS[3 + i]))
  local st
  if not f then st = 'gone'
  elseif f[3] ~= user then st = 'skip'
  elseif now >= deadline(f) then st = 'expired'
  elseif mode == '`+ModeOthers+`' and kept == 0 and holds(f, keep, now) then st = 'keep'; kept = i
  else st = 'live' end
  fs[i] = f or false
  sts[i] = st
end
if mode == '`+ModeOthers+`' and kept == 0 then return redis.error_reply('`+MsgKeep+`') end
local out, revoked, expired = {0, 0}, 0, 0
for i = 1, n do
  local sid, st, f = ARGV[4 + i], sts[i], fs[i]
  if st == 'gone' then
    if redis.call('HDEL', KEYS[1], sid) == 1 and redis.call('HDEL', KEYS[2], sid) == 1 then expired = expired + 1 end
  elseif st == 'expired' or (st == 'live' and mode ~= '`+ModeExpired+`') then
    redis.call('DEL', KEYS[3 + i])
    redis.call('HDEL', KEYS[1], sid)
    redis.call('HDEL', KEYS[2], sid)
    if st == 'expired' then expired = expired + 1 else revoked = revoked + 1 end
    out[#out + 1] = f[5]
    if f[6] ~= '' then out[#out + 1] = f[6] end
  end
end
bump(KEYS[3], '`+CountRevoked+`', revoked)
bump(KEYS[3], '`+CountExpired+`', expired)
out[1] = revoked
out[2] = expired
return out`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		mode, keep, user := args[0], args[2], args[3]
		t, err := parseArgs(args[1])
		if err != nil {
			return store.Value{}, err
		}
		now := t[0]
		sids := args[4:]
		recs := keys[3:]
		n := len(recs)
		if len(sids) < n {
			return store.Value{}, &store.ScriptError{Message: "ERR fewer ids than records"}
		}
		if mode != ModeExpired {
			named := make(map[string]bool, n)
			for _, sid := range sids[:n] {
				named[sid] = true
			}
			idx, err := v.HGetAll(keys[0])
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return store.Value{}, err
			}
			for f := range idx {
				if !named[f] {
					return store.Value{}, &store.ScriptError{Message: MsgRetry}
				}
			}
		}
		rs := make([]Record, n)
		sts := make([]string, n)
		kept := 0
		for i := range n {
			r, _, ok, err := getRecord(v, recs[i])
			if err != nil {
				return store.Value{}, err
			}
			switch {
			case !ok:
				sts[i] = "gone"
			case r.User != user:
				sts[i] = "skip"
			case now >= r.Deadline():
				sts[i] = "expired"
			case mode == ModeOthers && kept == 0 && holds(&r, keep, now):
				sts[i], kept = "keep", i+1
			default:
				sts[i] = "live"
			}
			rs[i] = r
		}
		if mode == ModeOthers && kept == 0 {
			return store.Value{}, &store.ScriptError{Message: MsgKeep}
		}
		out := []store.Value{store.IntValue(0), store.IntValue(0)}
		var revoked, expired int64
		for i := range n {
			sid, st, r := sids[i], sts[i], rs[i]
			switch {
			case st == "gone":
				d, err := v.HDel(keys[0], sid)
				if err != nil {
					return store.Value{}, err
				}
				if d == 1 {
					if d, err = v.HDel(keys[1], sid); err != nil {
						return store.Value{}, err
					}
					if d == 1 {
						expired++
					}
				}
			case st == "expired" || (st == "live" && mode != ModeExpired):
				if err := remove(v, recs[i], keys[0], keys[1], sid); err != nil {
					return store.Value{}, err
				}
				if st == "expired" {
					expired++
				} else {
					revoked++
				}
				out = append(out, store.StringValue(r.Cur))
				if r.Prev != "" {
					out = append(out, store.StringValue(r.Prev))
				}
			}
		}
		if err := bump(v, keys[2], CountRevoked, revoked); err != nil {
			return store.Value{}, err
		}
		if err := bump(v, keys[2], CountExpired, expired); err != nil {
			return store.Value{}, err
		}
		out[0], out[1] = store.IntValue(revoked), store.IntValue(expired)
		return store.ArrayValue(out...), nil
	})

// Stats reads one shard's figures at one instant. KEYS: shard live index,
// shard counters. ARGV: now (ms). It returns {live sessions, distinct users
// of live sessions, sessions past their deadline not yet pruned, created,
// revoked, expired (pruned)}. It writes nothing.
var Stats = store.NewScript("karat-session-stats", prelude+`
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local live, users, pending, seen = 0, 0, 0, {}
for i = 2, #all, 2 do
  local v = all[i]
  local c = string.find(v, ':', 1, true)
  if tonumber(string.sub(v, 1, c - 1)) > now then
    live = live + 1
    local u = string.sub(v, c + 1)
    if not seen[u] then
      seen[u] = true
      users = users + 1
    end
  else
    pending = pending + 1
  end
end
local function count(field) return tonumber(redis.call('HGET', KEYS[2], field) or '0') end
return {live, users, pending, count('`+CountCreated+`'), count('`+CountRevoked+`'), count('`+CountExpired+`')}`,
	func(v store.ScriptView, keys, args []string) (store.Value, error) {
		t, err := parseArgs(args[0])
		if err != nil {
			return store.Value{}, err
		}
		now := t[0]
		all, err := v.HGetAll(keys[0])
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Value{}, err
		}
		var live, pending int64
		seen := map[string]bool{}
		for _, val := range all {
			dl, user, ok := SplitLive(string(val))
			if !ok {
				return store.Value{}, &store.ScriptError{Message: "ERR bad live entry"}
			}
			if dl > now {
				live++
				seen[user] = true
			} else {
				pending++
			}
		}
		out := []store.Value{store.IntValue(live), store.IntValue(int64(len(seen))), store.IntValue(pending)}
		for _, f := range []string{CountCreated, CountRevoked, CountExpired} {
			var c int64
			b, err := v.HGet(keys[1], f)
			switch {
			case err == nil:
				if c, err = strconv.ParseInt(string(b), 10, 64); err != nil {
					return store.Value{}, store.ErrNotInteger
				}
			case !errors.Is(err, store.ErrNotFound):
				return store.Value{}, err
			}
			out = append(out, store.IntValue(c))
		}
		return store.ArrayValue(out...), nil
	})

// Scripts lists every script of the layer.
func Scripts() []*store.Script {
	return []*store.Script{Create, Touch, Update, Rotate, Revoke, RevokeMany, Stats}
}
