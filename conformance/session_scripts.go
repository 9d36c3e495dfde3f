package conformance

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/sessionrec"
	"github.com/karat-go/karat/store"
)

// The session scripts' inputs for CheckScript. Times are the layer's, passed
// as arguments in milliseconds; t0 is an arbitrary "now".
const t0 = int64(2_000_000_000_000)

var (
	hashA = strings.Repeat("a1", 32)
	hashB = strings.Repeat("b2", 32)
	hashC = strings.Repeat("c3", 32)
	sid1  = strings.Repeat("1", 32)
	sid2  = strings.Repeat("2", 32)
	sid3  = strings.Repeat("3", 32)
	sid4  = strings.Repeat("4", 32)
)

func ms64(n int64) string { return strconv.FormatInt(n, 10) }

// rec is a record of user "u{*}\n" (a hostile id) created at t0-60s, last
// seen at t0-30s, idle 10 min, absolute deadline t0+1h.
func rec(id, cur string) sessionrec.Record {
	return sessionrec.Record{ID: id, User: "u{*}\n", Tenant: "shop:1", Cur: cur, Version: 3,
		Created: t0 - 60_000, LastSeen: t0 - 30_000, Idle: 600_000, Abs: t0 + 3_600_000,
		Device: "laptop", UserAgent: "Firefox/1.0", IP: "192.0.2.1", Data: `{"role":"owner"}`}
}

// put writes a record the way Create does: the record with its TTL, its
// index entry, its live entry.
func put(ctx context.Context, s store.Store, recKey, idx, live string, r sessionrec.Record) error {
	ttl := time.Duration(r.Deadline()-t0) * time.Millisecond
	if ttl <= 0 {
		ttl = time.Minute // past its deadline for the layer, still in the store
	}
	if err := s.Set(ctx, recKey, r.Append(nil), ttl); err != nil {
		return err
	}
	if idx != "" {
		if err := s.HSet(ctx, idx, map[string][]byte{r.ID: []byte(ms64(r.Deadline()))}); err != nil {
			return err
		}
	}
	if live != "" {
		return s.HSet(ctx, live, map[string][]byte{r.ID: []byte(sessionrec.LiveValue(r.Deadline(), r.User))})
	}
	return nil
}

func setups(fs ...func(ctx context.Context, s store.Store, keys []string) error) func(ctx context.Context, s store.Store, keys []string) error {
	return func(ctx context.Context, s store.Store, keys []string) error {
		for _, f := range fs {
			if err := f(ctx, s, keys); err != nil {
				return err
			}
		}
		return nil
	}
}

func with(f func(*sessionrec.Record), r sessionrec.Record) sessionrec.Record {
	f(&r)
	return r
}

func counters(key int, created, revoked, expired int64) func(ctx context.Context, s store.Store, keys []string) error {
	return func(ctx context.Context, s store.Store, keys []string) error {
		return s.HSet(ctx, keys[key], map[string][]byte{
			sessionrec.CountCreated: []byte(ms64(created)), sessionrec.CountRevoked: []byte(ms64(revoked)), sessionrec.CountExpired: []byte(ms64(expired))})
	}
}

func testSessionScripts(e *env) {
	user := rec(sid1, hashA).User
	live := rec(sid1, hashA)
	expired := with(func(r *sessionrec.Record) { r.LastSeen = t0 - 700_000 }, rec(sid1, hashA))
	graced := with(func(r *sessionrec.Record) { r.Cur, r.Prev, r.PrevUntil = hashB, hashA, t0+5_000 }, rec(sid1, hashA))
	graceOver := with(func(r *sessionrec.Record) { r.Cur, r.Prev, r.PrevUntil = hashB, hashA, t0 }, rec(sid1, hashA))
	now := ms64(t0)
	check := func(s *store.Script, cases []ScriptCase) {
		e.t.Run(strings.TrimPrefix(s.Name(), "karat-session-"), func(t *testing.T) { CheckScript(t, e.h, s, cases) })
	}

	// Keys: record, index, live, counters.
	one := []string{"rec", "idx", "live", "n"}
	putOne := func(r sessionrec.Record) func(ctx context.Context, s store.Store, keys []string) error {
		return func(ctx context.Context, s store.Store, keys []string) error {
			idx, live := "", ""
			if len(keys) >= 3 {
				idx, live = keys[1], keys[2]
			}
			return put(ctx, s, keys[0], idx, live, r)
		}
	}
	fresh := rec(sid1, hashA)
	fresh.LastSeen, fresh.Created, fresh.Version = t0, t0, 1
	check(sessionrec.Create, []ScriptCase{
		{Name: "create", Keys: one, Args: []string{fresh.Encode(), sid1, now, ms64(fresh.Deadline()), user}},
		{Name: "create-counts-on", Keys: one, Args: []string{fresh.Encode(), sid1, now, ms64(fresh.Deadline()), user}, Setup: counters(3, 41, 2, 3)},
		{Name: "id-taken", Keys: one, Args: []string{fresh.Encode(), sid1, now, ms64(fresh.Deadline()), user}, Setup: putOne(live)},
		{Name: "deadline-not-after-now", Keys: one, Args: []string{fresh.Encode(), sid1, now, now, user}},
	})
	check(sessionrec.Touch, []ScriptCase{
		{Name: "touch", Keys: one[:3], Args: []string{hashA, now, "10000"}, Setup: putOne(live)},
		{Name: "throttled", Keys: one[:3], Args: []string{hashA, now, "60000"}, Setup: putOne(live)},
		{Name: "forced", Keys: one[:3], Args: []string{hashA, now, "0"}, Setup: putOne(live)},
		{Name: "not-after-last", Keys: one[:3], Args: []string{hashA, ms64(t0 - 40_000), "0"}, Setup: putOne(live)},
		{Name: "capped-by-absolute", Keys: one[:3], Args: []string{hashA, ms64(t0 + 3_500_000), "0"},
			Setup: putOne(with(func(r *sessionrec.Record) { r.LastSeen = t0 + 3_000_000 }, live))},
		{Name: "other-token", Keys: one[:3], Args: []string{hashB, now, "0"}, Setup: putOne(live)},
		{Name: "rotated-away-token", Keys: one[:3], Args: []string{hashA, now, "0"}, Setup: putOne(graced)},
		{Name: "expired", Keys: one[:3], Args: []string{hashA, now, "0"}, Setup: putOne(expired)},
		{Name: "missing", Keys: one[:3], Args: []string{hashA, now, "0"}},
	})
	check(sessionrec.Update, []ScriptCase{
		{Name: "update", Keys: one[:1], Args: []string{hashA, now, "3", `{"role":"clerk"}`}, Setup: putOne(live)},
		{Name: "empty-data", Keys: one[:1], Args: []string{hashA, now, "3", ""}, Setup: putOne(live)},
		{Name: "conflict", Keys: one[:1], Args: []string{hashA, now, "2", "x"}, Setup: putOne(live)},
		{Name: "rotated-away-token", Keys: one[:1], Args: []string{hashA, now, "3", "x"}, Setup: putOne(graced)},
		{Name: "expired", Keys: one[:1], Args: []string{hashA, now, "3", "x"}, Setup: putOne(expired)},
		{Name: "missing", Keys: one[:1], Args: []string{hashA, now, "3", "x"}},
	})
	check(sessionrec.Rotate, []ScriptCase{
		{Name: "with-grace", Keys: one[:1], Args: []string{hashA, hashC, now, "30000"}, Setup: putOne(live)},
		{Name: "no-grace", Keys: one[:1], Args: []string{hashA, hashC, now, "0"}, Setup: putOne(live)},
		{Name: "again-drops-older-grace", Keys: one[:1], Args: []string{hashB, hashC, now, "0"}, Setup: putOne(graced)},
		{Name: "rotated-away-token", Keys: one[:1], Args: []string{hashA, hashC, now, "30000"}, Setup: putOne(graced)},
		{Name: "expired", Keys: one[:1], Args: []string{hashA, hashC, now, "0"}, Setup: putOne(expired)},
		{Name: "missing", Keys: one[:1], Args: []string{hashA, hashC, now, "0"}},
	})
	onlyIndexes := func(ctx context.Context, s store.Store, keys []string) error {
		if err := s.HSet(ctx, keys[1], map[string][]byte{sid1: []byte(now)}); err != nil {
			return err
		}
		return s.HSet(ctx, keys[2], map[string][]byte{sid1: []byte(sessionrec.LiveValue(t0, user)), sid2: []byte(sessionrec.LiveValue(t0+1, "other"))})
	}
	check(sessionrec.Revoke, []ScriptCase{
		{Name: "by-token", Keys: one, Args: []string{sessionrec.ModeToken, hashA, sid1, now}, Setup: setups(putOne(live), counters(3, 5, 1, 0))},
		{Name: "by-token-in-grace", Keys: one, Args: []string{sessionrec.ModeToken, hashA, sid1, now}, Setup: putOne(graced)},
		{Name: "by-token-after-grace", Keys: one, Args: []string{sessionrec.ModeToken, hashA, sid1, now}, Setup: putOne(graceOver)},
		{Name: "by-other-token", Keys: one, Args: []string{sessionrec.ModeToken, hashC, sid1, now}, Setup: putOne(live)},
		{Name: "by-empty-token", Keys: one, Args: []string{sessionrec.ModeToken, "", sid1, now}, Setup: putOne(graced)},
		{Name: "by-id", Keys: one, Args: []string{sessionrec.ModeID, user, sid1, now}, Setup: putOne(live)},
		{Name: "by-id-of-another-user", Keys: one, Args: []string{sessionrec.ModeID, "mallory", sid1, now}, Setup: putOne(live)},
		{Name: "expired", Keys: one, Args: []string{sessionrec.ModeID, user, sid1, now}, Setup: putOne(expired)},
		{Name: "gone-but-indexed", Keys: one, Args: []string{sessionrec.ModeID, user, sid1, now}, Setup: onlyIndexes},
		{Name: "gone-not-indexed", Keys: one, Args: []string{sessionrec.ModeID, user, sid2, now}, Setup: onlyIndexes},
		{Name: "missing", Keys: one, Args: []string{sessionrec.ModeToken, hashA, sid1, now}},
	})
	// Keys: index, live, counters, then records of sid1..sid4.
	many := []string{"idx", "live", "n", "r1", "r2", "r3", "r4"}
	fourSessions := func(ctx context.Context, s store.Store, keys []string) error {
		for i, r := range []sessionrec.Record{
			rec(sid1, hashA),
			with(func(r *sessionrec.Record) { r.Cur, r.Prev, r.PrevUntil = hashB, hashC, t0+1000 }, rec(sid2, hashB)),
			with(func(r *sessionrec.Record) { r.LastSeen = t0 - 700_000 }, rec(sid3, strings.Repeat("d4", 32))),
		} {
			if err := put(ctx, s, keys[3+i], keys[0], keys[1], r); err != nil {
				return err
			}
		}
		// sid4: indexed, its record gone (its TTL passed in the store).
		if err := s.HSet(ctx, keys[0], map[string][]byte{sid4: []byte(ms64(t0 - 1))}); err != nil {
			return err
		}
		return s.HSet(ctx, keys[1], map[string][]byte{sid4: []byte(sessionrec.LiveValue(t0-1, user))})
	}
	args := func(mode, keep string) []string {
		return []string{mode, now, keep, user, sid1, sid2, sid3, sid4}
	}
	check(sessionrec.RevokeMany, []ScriptCase{
		{Name: "all", Keys: many, Args: args(sessionrec.ModeAll, ""), Setup: setups(fourSessions, counters(2, 9, 1, 1))},
		{Name: "others", Keys: many, Args: args(sessionrec.ModeOthers, hashB), Setup: fourSessions},
		{Name: "others-kept-by-grace-token", Keys: many, Args: args(sessionrec.ModeOthers, hashC), Setup: fourSessions},
		{Name: "others-keep-unknown", Keys: many, Args: args(sessionrec.ModeOthers, hashC[:60]+"0000"), Setup: fourSessions},
		{Name: "others-keep-expired", Keys: many, Args: args(sessionrec.ModeOthers, strings.Repeat("d4", 32)), Setup: fourSessions},
		{Name: "expired-only", Keys: many, Args: args(sessionrec.ModeExpired, ""), Setup: fourSessions},
		{Name: "index-changed", Keys: many[:6], Args: args(sessionrec.ModeAll, "")[:7], Setup: fourSessions},
		{Name: "empty", Keys: many[:3], Args: args(sessionrec.ModeAll, "")[:4]},
		{Name: "foreign-record", Keys: many[:4], Args: []string{sessionrec.ModeAll, now, "", "mallory", sid1},
			Setup: func(ctx context.Context, s store.Store, keys []string) error {
				return put(ctx, s, keys[3], "", "", rec(sid1, hashA))
			}},
	})
	check(sessionrec.Stats, []ScriptCase{
		{Name: "stats", Keys: many[1:3], Args: []string{now}, Setup: func(ctx context.Context, s store.Store, keys []string) error {
			if err := s.HSet(ctx, keys[0], map[string][]byte{
				sid1: []byte(sessionrec.LiveValue(t0+1, "ann")), sid2: []byte(sessionrec.LiveValue(t0+5, "ann")),
				sid3: []byte(sessionrec.LiveValue(t0+9, "bob:x")), sid4: []byte(sessionrec.LiveValue(t0, "cy")),
			}); err != nil {
				return err
			}
			return counters(1, 12, 4, 2)(ctx, s, keys)
		}},
		{Name: "empty", Keys: many[1:3], Args: []string{now}},
	})
}
