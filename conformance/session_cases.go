package conformance

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

type appData struct {
	Role  string         `json:"role"`
	Perms []string       `json:"perms,omitempty"`
	F     map[string]int `json:"f,omitempty"`
}

func testSessionLifecycle(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, nil)
	tok, s, err := m.Create(ctx, "ann", "shop-1", session.Meta{Device: "laptop", UserAgent: "Firefox", IP: "192.0.2.7", Data: appData{Role: "owner"}})
	require.NoError(t, err)
	require.Len(t, tok, session.TokenLen)
	assert.Equal(t, strings.ToLower(tok), tok)
	assert.Len(t, s.ID, 32)
	assert.NotContains(t, tok, s.ID)

	got, err := m.Validate(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, s.ID, got.ID)
	assert.Equal(t, "ann", got.User)
	assert.Equal(t, "shop-1", got.Tenant)
	assert.Equal(t, "laptop", got.Device)
	assert.Equal(t, "Firefox", got.UserAgent)
	assert.Equal(t, "192.0.2.7", got.IP)
	assert.True(t, sessionStart.Equal(got.Created), "created at the layer's clock")
	assert.True(t, sessionStart.Add(30*time.Minute).Equal(got.Expires), "idle deadline by default 30 min")
	assert.True(t, sessionStart.Add(8*time.Hour).Equal(got.AbsoluteExpires), "absolute deadline by default 8 h")
	var d appData
	require.NoError(t, got.Data(&d))
	assert.Equal(t, "owner", d.Role)

	v, err := m.Update(ctx, tok, got.Version, appData{Role: "clerk"})
	require.NoError(t, err)
	assert.Equal(t, got.Version+1, v)
	_, err = m.Update(ctx, tok, got.Version, appData{Role: "thief"})
	require.ErrorIs(t, err, session.ErrConflict, "a stale version loses")
	got, err = m.Validate(ctx, tok)
	require.NoError(t, err)
	require.NoError(t, got.Data(&d))
	assert.Equal(t, "clerk", d.Role)

	w.advance(10 * time.Minute)
	ext, err := m.Extend(ctx, tok)
	require.NoError(t, err)
	assert.True(t, sessionStart.Add(40*time.Minute).Equal(ext.Expires), "Extend moves the idle deadline")
	assert.True(t, sessionStart.Add(8*time.Hour).Equal(ext.AbsoluteExpires), "but not the absolute one")

	list, err := m.List(ctx, "ann")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, s.ID, list[0].ID)
	assert.True(t, sessionStart.Add(10*time.Minute).Equal(list[0].LastSeen))

	require.NoError(t, m.Revoke(ctx, tok))
	_, err = m.Validate(ctx, tok)
	require.ErrorIs(t, err, session.ErrNotFound)
	require.ErrorIs(t, m.Revoke(ctx, tok), session.ErrNotFound)
	list, err = m.List(ctx, "ann")
	require.NoError(t, err)
	assert.Empty(t, list)

	_, err = session.New(w.s, nil, nil)
	require.ErrorIs(t, err, session.ErrInvalid, "no secret")
	_, err = session.New(w.s, [][]byte{[]byte("short")}, nil)
	require.ErrorIs(t, err, session.ErrInvalid, "a short secret")
}

// encodings returns the forms a token could leak in.
func encodings(tok string) []string {
	raw, _ := hex.DecodeString(tok)
	return []string{tok, strings.ToUpper(tok), string(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString([]byte(tok)),
		tok[:32], tok[32:]}
}

func testSessionHashedAtRest(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, &session.Options{RotationGrace: time.Minute})
	var toks []string
	for i := range 5 {
		tok, _, err := m.Create(ctx, "user-"+strconv.Itoa(i%2), "shop", session.Meta{Device: "d", Data: appData{Role: "r"}})
		require.NoError(t, err)
		toks = append(toks, tok)
	}
	s, err := m.Validate(ctx, toks[0])
	require.NoError(t, err)
	_, err = m.Update(ctx, toks[0], s.Version, appData{Role: "x"})
	require.NoError(t, err)
	rotated, _, err := m.Rotate(ctx, toks[1])
	require.NoError(t, err)
	toks = append(toks, rotated)
	w.advance(2 * time.Minute)
	_, err = m.Extend(ctx, toks[2])
	require.NoError(t, err)
	require.NoError(t, m.Revoke(ctx, toks[3]))

	dump := w.dump()
	require.NotEmpty(t, dump)
	for k, v := range dump {
		for _, tok := range toks {
			for _, enc := range encodings(tok) {
				if strings.Contains(k, enc) || strings.Contains(v, enc) {
					t.Fatalf("a token (as %q) is stored in key %q or its value", enc, k)
				}
			}
		}
	}
	list, err := m.List(ctx, "user-0")
	require.NoError(t, err)
	for _, s := range list {
		text := fmt.Sprintf("%+v", *s)
		for _, tok := range toks {
			assert.NotContains(t, text, tok, "List never returns a token")
		}
	}
}

// tickingClock runs at real speed from sessionStart, so that touches in a
// race really record new activity.
type tickingClock struct{ origin time.Time }

func (c tickingClock) Now() time.Time { return sessionStart.Add(time.Since(c.origin)) }

func testSessionNoResurrection(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	opts := &session.Options{Namespace: w.ns, Clock: tickingClock{time.Now()}, TouchInterval: time.Millisecond, Shards: 4}
	m, err := session.New(w.s, sessionSecrets, opts)
	require.NoError(t, err)
	// The checker reads past every cache: what the store holds.
	noCache := *opts
	noCache.MaxStale = -1
	check, err := session.New(w.s, sessionSecrets, &noCache)
	require.NoError(t, err)

	const rounds = 24
	kinds := []string{"revoke", "revoke-all", "revoke-others", "revoke-by-id", "rotate"}
	for round := range rounds {
		kind := kinds[round%len(kinds)]
		user := "racer-" + strconv.Itoa(round)
		tok, s, err := m.Create(ctx, user, "t", session.Meta{Data: appData{Role: "a"}})
		require.NoError(t, err)
		keep, _, err := m.Create(ctx, user, "t", session.Meta{})
		require.NoError(t, err)

		var wg sync.WaitGroup
		var stop atomic.Bool
		var failed atomic.Value
		note := func(err error) {
			if err != nil && !errors.Is(err, session.ErrNotFound) && !errors.Is(err, session.ErrConflict) {
				failed.Store(err)
			}
		}
		for g := range 6 {
			wg.Go(func() {
				for i := 0; !stop.Load() || i < 20; i++ {
					switch g % 3 {
					case 0:
						_, err := m.Validate(ctx, tok)
						note(err)
					case 1:
						_, err := m.Extend(ctx, tok)
						note(err)
					case 2:
						if cur, err := m.Validate(ctx, tok); err == nil {
							_, err = m.Update(ctx, tok, cur.Version, appData{Role: "late-" + strconv.Itoa(i)})
							note(err)
						}
					}
					if i > 400 {
						return
					}
				}
			})
		}
		var newTok string
		wg.Go(func() {
			var err error
			switch kind {
			case "revoke":
				err = m.Revoke(ctx, tok)
			case "revoke-all":
				_, err = m.RevokeAll(ctx, user)
			case "revoke-others":
				_, err = m.RevokeOthers(ctx, user, keep)
			case "revoke-by-id":
				err = m.RevokeByID(ctx, user, s.ID)
			case "rotate":
				newTok, _, err = m.Rotate(ctx, tok)
			}
			if err != nil {
				failed.Store(fmt.Errorf("%s: %w", kind, err))
			}
			stop.Store(true)
		})
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("round %d (%s): %v", round, kind, err)
		}
		for _, mgr := range []*session.Manager{m, check} {
			_, err = mgr.Validate(ctx, tok)
			require.ErrorIs(t, err, session.ErrNotFound, "round %d (%s): the old token came back", round, kind)
			_, err = mgr.Extend(ctx, tok)
			require.ErrorIs(t, err, session.ErrNotFound, "round %d (%s)", round, kind)
		}
		list, err := check.List(ctx, user)
		require.NoError(t, err)
		ids := map[string]bool{}
		for _, l := range list {
			ids[l.ID] = true
		}
		if kind == "rotate" {
			assert.True(t, ids[s.ID], "round %d: the rotated session lives on", round)
			_, err := check.Validate(ctx, newTok)
			require.NoError(t, err, "round %d: the new token works", round)
		} else {
			assert.False(t, ids[s.ID], "round %d (%s): a revoked session is listed again", round, kind)
		}
		if kind == "revoke-all" {
			assert.Empty(t, list)
		}
	}
	// Nothing revoked was written back: the store holds records of the
	// rotated sessions and of the kept ones only.
	st, err := check.Stats(ctx)
	require.NoError(t, err)
	wantLive := int64(0)
	for round := range rounds {
		switch kinds[round%len(kinds)] {
		case "rotate":
			wantLive += 2
		case "revoke-all":
		default:
			wantLive++
		}
	}
	assert.Equal(t, wantLive, st.Live, "live sessions after the races")
	assert.Equal(t, int64(2*rounds), st.Created)
	assert.Equal(t, int64(2*rounds)-wantLive, st.Revoked)
}

func testSessionNoLostUpdate(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, nil)
	tok, _, err := m.Create(ctx, "busy", "t", session.Meta{Data: appData{Role: "owner", F: map[string]int{}}})
	require.NoError(t, err)
	const writers = 50
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			for attempt := 0; ; attempt++ {
				if attempt > 10_000 {
					errs <- fmt.Errorf("writer %d: gave up", g)
					return
				}
				s, err := m.Validate(ctx, tok)
				if err != nil {
					errs <- err
					return
				}
				var d appData
				if err := s.Data(&d); err != nil {
					errs <- err
					return
				}
				if d.F == nil {
					d.F = map[string]int{}
				}
				d.F["f"+strconv.Itoa(g)] = g
				_, err = m.Update(ctx, tok, s.Version, d)
				if errors.Is(err, session.ErrConflict) {
					conflicts.Add(1)
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, err := m.Validate(ctx, tok)
	require.NoError(t, err)
	var d appData
	require.NoError(t, s.Data(&d))
	assert.Len(t, d.F, writers, "every writer's field landed")
	for g := range writers {
		assert.Equal(t, g, d.F["f"+strconv.Itoa(g)])
	}
	assert.Equal(t, "owner", d.Role)
	assert.Equal(t, uint64(1+writers), s.Version, "one version per landed update")
	t.Logf("%d conflicts retried", conflicts.Load())
}

// testSessionNoLostUpdateAcrossProcesses: 5 worker processes, each with its
// own store and Manager, 10 goroutines each, every goroutine writing a field
// of its own through Update with retry: all 50 land.
func testSessionNoLostUpdateAcrossProcesses(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	if _, ok := w.h.(URLer); !ok {
		t.Skip("harness has no store URL (URLer): its store cannot be shared with other OS processes")
	}
	const shards = 8
	m := w.manager(nil, &session.Options{Shards: shards})
	tok, _, err := m.Create(ctx, "shared", "t", session.Meta{Data: appData{Role: "owner"}})
	require.NoError(t, err)
	const procs, each = 5, 10
	args := []string{w.ns.String(), hex.EncodeToString(sessionSecrets[0]), strconv.FormatInt(w.clock.Now().UnixMilli(), 10),
		strconv.Itoa(shards), tok, strconv.Itoa(each)}
	conflicts := 0
	var names []string
	for _, r := range RunWorkers(t, w.h, procs, "session-update", args...) {
		name, n, ok := strings.Cut(r, " ")
		require.True(t, ok, "worker result %q", r)
		c, err := strconv.Atoi(n)
		require.NoError(t, err)
		conflicts += c
		names = append(names, name)
	}
	s, err := m.Validate(ctx, tok)
	require.NoError(t, err)
	var d appData
	require.NoError(t, s.Data(&d))
	assert.Len(t, d.F, procs*each, "every process's every field landed")
	for _, name := range names {
		for i := range each {
			assert.Equal(t, i, d.F[name+"-"+strconv.Itoa(i)], "field %s-%d", name, i)
		}
	}
	assert.Equal(t, uint64(1+procs*each), s.Version)
	t.Logf("%d conflicts retried across %d processes", conflicts, procs)
}

func testSessionRotationGrace(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, &session.Options{RotationGrace: 30 * time.Second})
	old, s, err := m.Create(ctx, "rot", "t", session.Meta{Device: "phone", Data: appData{Role: "clerk"}})
	require.NoError(t, err)
	w.advance(10 * time.Minute)
	nw, r, err := m.Rotate(ctx, old)
	require.NoError(t, err)
	assert.NotEqual(t, old, nw)
	assert.Equal(t, s.ID, r.ID, "same session")
	assert.True(t, s.Created.Equal(r.Created), "same creation time")
	assert.True(t, s.AbsoluteExpires.Equal(r.AbsoluteExpires), "Rotate does not move the absolute deadline")
	var d appData
	require.NoError(t, r.Data(&d))
	assert.Equal(t, "clerk", d.Role, "same data")

	got, err := m.Validate(ctx, old)
	require.NoError(t, err, "the old token works within the grace")
	assert.True(t, got.InGrace)
	assert.True(t, sessionStart.Add(10*time.Minute+30*time.Second).Equal(got.Expires), "an old token's Expires is the end of its grace")
	_, err = m.Update(ctx, old, got.Version, appData{Role: "owner"})
	require.ErrorIs(t, err, session.ErrNotFound, "the old token is read-only")
	_, _, err = m.Rotate(ctx, old)
	require.ErrorIs(t, err, session.ErrNotFound, "and cannot rotate again")
	got, err = m.Validate(ctx, nw)
	require.NoError(t, err)
	assert.False(t, got.InGrace)

	w.advance(29*time.Second + 999*time.Millisecond)
	_, err = m.Validate(ctx, old)
	require.NoError(t, err, "still within the grace")
	w.advance(time.Millisecond)
	_, err = m.Validate(ctx, old)
	require.ErrorIs(t, err, session.ErrNotFound, "the grace is over")
	_, err = m.Validate(ctx, nw)
	require.NoError(t, err)

	m0 := w.manager(nil, nil) // no grace
	a, _, err := m0.Create(ctx, "rot0", "t", session.Meta{})
	require.NoError(t, err)
	b, _, err := m0.Rotate(ctx, a)
	require.NoError(t, err)
	_, err = m0.Validate(ctx, a)
	require.ErrorIs(t, err, session.ErrNotFound, "no grace: the old token is gone at once")
	_, err = m0.Validate(ctx, b)
	require.NoError(t, err)
	require.NoError(t, m0.Revoke(ctx, b))
	_, err = m.Validate(ctx, nw)
	require.NoError(t, err, "another session is untouched")
}

func testSessionIdleVsAbsolute(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, &session.Options{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 8 * time.Hour, TouchInterval: time.Minute})
	busy, _, err := m.Create(ctx, "busy", "t", session.Meta{})
	require.NoError(t, err)
	idle, _, err := m.Create(ctx, "idle", "t", session.Meta{})
	require.NoError(t, err)
	lazy, _, err := m.Create(ctx, "lazy", "t", session.Meta{})
	require.NoError(t, err)

	// lazy: seen after 30 s (within the touch interval: not recorded), then
	// 29 min 40 s later: its recorded activity is 30 min 10 s old.
	w.advance(30 * time.Second)
	_, err = m.Validate(ctx, lazy)
	require.NoError(t, err)

	elapsed := 30 * time.Second
	step := func(d time.Duration) {
		w.advance(d)
		elapsed += d
	}
	step(29*time.Minute + 29*time.Second) // 29 min 59 s after creation
	s, err := m.Validate(ctx, idle)
	require.NoError(t, err, "idle: seen just before its idle deadline")
	_, err = m.Validate(ctx, busy)
	require.NoError(t, err)
	assert.True(t, sessionStart.Add(elapsed+30*time.Minute).Equal(s.Expires), "the touch moved the idle deadline")
	step(11 * time.Second) // 30 min 10 s
	_, err = m.Validate(ctx, lazy)
	require.ErrorIs(t, err, session.ErrNotFound, "lazy: activity within the touch interval is not recorded")

	_, err = m.Validate(ctx, busy)
	require.NoError(t, err)
	for elapsed+29*time.Minute < 8*time.Hour {
		step(29 * time.Minute)
		_, err := m.Validate(ctx, busy)
		require.NoError(t, err, "busy: active every 29 min, at %v", elapsed)
	}
	s, err = m.Extend(ctx, busy)
	require.NoError(t, err)
	assert.True(t, sessionStart.Add(8*time.Hour).Equal(s.Expires), "Extend: the idle deadline is capped by the absolute one")
	// (Not Extend a millisecond before the cap: on a real server the
	// record's TTL, derived from the layer's clock, would then be 1 ms of
	// real time.)
	step(8*time.Hour - time.Millisecond - elapsed)
	s, err = m.Validate(ctx, busy)
	require.NoError(t, err, "busy: a millisecond before the cap")
	assert.True(t, sessionStart.Add(8*time.Hour).Equal(s.Expires), "the idle deadline is capped by the absolute one")
	step(time.Millisecond)
	_, err = m.Validate(ctx, busy)
	require.ErrorIs(t, err, session.ErrNotFound, "busy: ends at the 8 h cap, activity or not")
	_, err = m.Extend(ctx, busy)
	require.ErrorIs(t, err, session.ErrNotFound, "Extend cannot move the cap")

	// idle was last recorded at 29 min 59 s; it ended 30 min later.
	_, err = m.Validate(ctx, idle)
	require.ErrorIs(t, err, session.ErrNotFound)
}

func testSessionMultiDevice(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, &session.Options{Shards: 16})
	const others = 10_000
	start := time.Now()
	otherToks := make([]string, others)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= others {
					return
				}
				tok, _, err := m.Create(ctx, "other-"+strconv.Itoa(i), "shop-"+strconv.Itoa(i%50), session.Meta{Device: "d"})
				if err != nil {
					failed.Store(err)
					return
				}
				otherToks[i] = tok
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d other users' sessions created in %v", others, time.Since(start).Round(time.Millisecond))

	const owner = "owner\n{shop}*"
	devices := []session.Meta{
		{Device: "laptop", UserAgent: "Firefox/130", IP: "192.0.2.1"},
		{Device: "phone", UserAgent: "Safari/17", IP: "198.51.100.2"},
		{Device: "tablet", UserAgent: "Chrome/128", IP: "203.0.113.3"},
	}
	var toks []string
	var ids []string
	for i, d := range devices {
		tok, s, err := m.Create(ctx, owner, "shop", d)
		require.NoError(t, err)
		toks, ids = append(toks, tok), append(ids, s.ID)
		if i < len(devices)-1 {
			w.advance(time.Second)
		}
	}
	calls := func() uint64 {
		if sr, ok := store.Capability[store.StatsReporter](w.s); ok {
			return sr.Stats().Calls
		}
		return 0
	}
	before := calls()
	list, err := m.List(ctx, owner)
	require.NoError(t, err)
	if _, ok := store.Capability[store.StatsReporter](w.s); ok {
		assert.LessOrEqual(t, calls()-before, uint64(2), "List costs two store calls among %d sessions", others+3)
	}
	require.Len(t, list, 3)
	for i, s := range list {
		assert.Equal(t, ids[i], s.ID, "oldest first")
		assert.Equal(t, devices[i].Device, s.Device)
		assert.Equal(t, devices[i].UserAgent, s.UserAgent)
		assert.Equal(t, devices[i].IP, s.IP)
		assert.Equal(t, owner, s.User)
		assert.False(t, s.LastSeen.IsZero())
		assert.True(t, s.Expires.After(s.LastSeen))
	}

	require.NoError(t, m.RevokeByID(ctx, owner, ids[1]))
	require.ErrorIs(t, m.RevokeByID(ctx, owner, ids[1]), session.ErrNotFound)
	require.ErrorIs(t, m.RevokeByID(ctx, "other-7", ids[0]), session.ErrNotFound, "another user cannot revoke by id")
	_, err = m.Validate(ctx, toks[1])
	require.ErrorIs(t, err, session.ErrNotFound)
	list, err = m.List(ctx, owner)
	require.NoError(t, err)
	require.Len(t, list, 2)

	_, err = m.RevokeOthers(ctx, owner, otherToks[0])
	require.ErrorIs(t, err, session.ErrNotFound, "the kept token must be the user's")
	n, err := m.RevokeOthers(ctx, owner, toks[0])
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	list, err = m.List(ctx, owner)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, ids[0], list[0].ID)
	_, err = m.Validate(ctx, toks[2])
	require.ErrorIs(t, err, session.ErrNotFound)
	_, err = m.Validate(ctx, toks[0])
	require.NoError(t, err)

	for range 2 {
		tok, _, err := m.Create(ctx, owner, "shop", session.Meta{Device: "kiosk"})
		require.NoError(t, err)
		toks = append(toks, tok)
	}
	n, err = m.RevokeAll(ctx, owner)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	list, err = m.List(ctx, owner)
	require.NoError(t, err)
	assert.Empty(t, list)
	for _, tok := range toks {
		_, err := m.Validate(ctx, tok)
		require.ErrorIs(t, err, session.ErrNotFound)
	}
	for i := 0; i < others; i += 997 {
		s, err := m.Validate(ctx, otherToks[i])
		require.NoError(t, err, "other user %d is untouched", i)
		assert.Equal(t, "other-"+strconv.Itoa(i), s.User)
	}
	st, err := m.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(others), st.Live)
	assert.Equal(t, int64(others), st.Users)
	assert.Equal(t, int64(others+5), st.Created)
	assert.Equal(t, int64(5), st.Revoked)
}

func testSessionStrictTokens(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, nil)
	valid, _, err := m.Create(ctx, "strict", "t", session.Meta{})
	require.NoError(t, err)
	unknown := strings.Repeat("0123456789abcdef", 4)
	malformed := map[string]string{
		"empty":     "",
		"63":        valid[:63],
		"65":        valid + "0",
		"uppercase": strings.ToUpper(valid),
		"non-hex":   valid[:63] + "g",
		"space":     " " + valid[1:],
		"10MB":      strings.Repeat("a", 10<<20),
	}
	if strings.ToUpper(valid) == valid { // only digits: make it uppercase somewhere
		malformed["uppercase"] = "A" + valid[1:]
	}
	before := w.dump()
	sr, hasStats := store.Capability[store.StatsReporter](w.s)
	var calls uint64
	if hasStats {
		calls = sr.Stats().Calls
	}
	ops := func(tok string) []error {
		_, e1 := m.Validate(ctx, tok)
		_, e2 := m.Update(ctx, tok, 1, appData{Role: "x"})
		_, e3 := m.Extend(ctx, tok)
		_, _, e4 := m.Rotate(ctx, tok)
		e5 := m.Revoke(ctx, tok)
		_, e6 := m.RevokeOthers(ctx, "strict", tok)
		return []error{e1, e2, e3, e4, e5, e6}
	}
	for name, tok := range malformed {
		for i, err := range ops(tok) {
			require.ErrorIs(t, err, session.ErrNotFound, "%s token, op %d", name, i)
		}
	}
	if hasStats {
		assert.Equal(t, calls, sr.Stats().Calls, "malformed tokens never reach the store")
	}
	for i, err := range ops(unknown) {
		require.ErrorIs(t, err, session.ErrNotFound, "unknown token, op %d", i)
	}
	w.sameDump(before, w.dump(), "no token was adopted or written")
	st, err := m.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(6*len(malformed)), st.MalformedTokens)
	assert.Equal(t, uint64(6*(len(malformed)+1)), st.InvalidTokens)
	_, err = m.Validate(ctx, valid)
	require.NoError(t, err, "the real token still works")
}

func testSessionHostileIDs(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	m := w.manager(nil, nil)
	users := []string{"*", "{", "}", "a\nb", "\xff\xfe\x00", "user:1", strings.Repeat("é", 5000), strings.Repeat("{x}", 3000)}
	toks := map[string]string{}
	for _, u := range users {
		tok, s, err := m.Create(ctx, u, u+"-tenant", session.Meta{Device: "dev", Data: appData{Role: u}})
		require.NoError(t, err, "user of %d bytes", len(u))
		toks[u] = tok
		assert.Equal(t, u, s.User)
	}
	for _, u := range users {
		s, err := m.Validate(ctx, toks[u])
		require.NoError(t, err)
		assert.Equal(t, u, s.User)
		assert.Equal(t, u+"-tenant", s.Tenant)
		list, err := m.List(ctx, u)
		require.NoError(t, err)
		require.Len(t, list, 1, "user %q sees only their own session", u)
		assert.Equal(t, s.ID, list[0].ID)
	}
	n, err := m.RevokeAll(ctx, "*")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a glob character revokes no one else")
	for _, u := range users[1:] {
		_, err := m.Validate(ctx, toks[u])
		require.NoError(t, err, "user %q", u)
	}
	before := w.dump()
	huge := strings.Repeat("x", 10<<20)
	_, _, err = m.Create(ctx, huge, "t", session.Meta{})
	require.ErrorIs(t, err, session.ErrInvalid)
	_, _, err = m.Create(ctx, "", "t", session.Meta{})
	require.ErrorIs(t, err, session.ErrInvalid)
	_, _, err = m.Create(ctx, "u", huge, session.Meta{})
	require.ErrorIs(t, err, session.ErrInvalid)
	_, _, err = m.Create(ctx, "u", "t", session.Meta{UserAgent: huge})
	require.ErrorIs(t, err, session.ErrInvalid)
	_, _, err = m.Create(ctx, "u", "t", session.Meta{Data: huge})
	require.ErrorIs(t, err, session.ErrInvalid)
	_, err = m.List(ctx, huge)
	require.ErrorIs(t, err, session.ErrInvalid)
	_, err = m.RevokeAll(ctx, huge)
	require.ErrorIs(t, err, session.ErrInvalid)
	w.sameDump(before, w.dump(), "refused input wrote nothing")
}

func testSessionRevocationSeen(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	const maxStale = 500 * time.Millisecond
	a := w.manager(nil, &session.Options{MaxStale: maxStale})
	sb := w.newStore()
	b := w.manager(sb, &session.Options{MaxStale: maxStale})
	tok, _, err := a.Create(ctx, "seen", "t", session.Meta{Data: appData{Role: "one"}})
	require.NoError(t, err)

	sr, hasStats := store.Capability[store.StatsReporter](sb)
	var before store.Stats
	if hasStats {
		before = sr.Stats()
	}
	for range 20 {
		_, err := b.Validate(ctx, tok)
		require.NoError(t, err)
	}
	if w.hasCap(store.CapCachedReads) && hasStats {
		after := sr.Stats()
		assert.LessOrEqual(t, after.CacheMisses-before.CacheMisses, uint64(2), "only the first validation asks the server (pointer, record)")
		assert.GreaterOrEqual(t, after.CacheHits-before.CacheHits, uint64(19), "the others are served from the client-side cache: no round trip")
		assert.Equal(t, after.Calls-before.Calls, after.CacheHits-before.CacheHits+after.CacheMisses-before.CacheMisses, "no other store call")
	}

	// An update through a is seen by b within the bound.
	s, err := a.Validate(ctx, tok)
	require.NoError(t, err)
	_, err = a.Update(ctx, tok, s.Version, appData{Role: "two"})
	require.NoError(t, err)
	s, err = a.Validate(ctx, tok)
	require.NoError(t, err)
	var d appData
	require.NoError(t, s.Data(&d))
	assert.Equal(t, "two", d.Role, "read-your-writes on one instance")
	w.pollUntil(maxStale, "b sees the update", func() bool {
		s, err := b.Validate(ctx, tok)
		require.NoError(t, err)
		var d appData
		require.NoError(t, s.Data(&d))
		return d.Role == "two"
	})

	require.NoError(t, a.Revoke(ctx, tok))
	_, err = a.Validate(ctx, tok)
	require.ErrorIs(t, err, session.ErrNotFound, "read-your-writes: the revoking instance sees it at once")
	w.pollUntil(maxStale, "b sees the revocation", func() bool {
		_, err := b.Validate(ctx, tok)
		if errors.Is(err, session.ErrNotFound) {
			return true
		}
		require.NoError(t, err)
		return false
	})
	_, err = b.Validate(ctx, tok)
	require.ErrorIs(t, err, session.ErrNotFound, "and it stays revoked")
}

// pollUntil polls cond until it holds, and fails if it still does not once
// bound (plus a margin for a loaded machine) has passed. The bound is what
// the code enforces; the margin covers the calls' own time.
func (w *sessionWorld) pollUntil(bound time.Duration, what string, cond func() bool) {
	w.t.Helper()
	start := time.Now()
	deadline := start.Add(bound + 2*time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within %v (+2s margin)", what, bound)
		}
		time.Sleep(time.Millisecond) // a polling interval, not synchronisation
	}
	w.t.Logf("%s after %v (bound %v)", what, time.Since(start).Round(time.Microsecond), bound)
}

func testSessionSecretRotation(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	newSecret := []byte("the newest secret, also at least 32 bytes")
	mk := func(secrets ...[]byte) *session.Manager {
		m, err := session.New(w.s, secrets, &session.Options{Namespace: w.ns, Clock: w.clock, Shards: 4})
		require.NoError(t, err)
		return m
	}
	old := mk(sessionSecrets[0])
	both := mk(newSecret, sessionSecrets[0])
	onlyNew := mk(newSecret)
	tokOld, _, err := old.Create(ctx, "sec", "t", session.Meta{})
	require.NoError(t, err)
	_, err = both.Validate(ctx, tokOld)
	require.NoError(t, err, "an older secret keeps its sessions")
	_, err = onlyNew.Validate(ctx, tokOld)
	require.ErrorIs(t, err, session.ErrNotFound, "once dropped, its tokens are not found")
	tokNew, _, err := both.Rotate(ctx, tokOld)
	require.NoError(t, err)
	_, err = onlyNew.Validate(ctx, tokNew)
	require.NoError(t, err, "rotation moves a session to the newest secret")
	_, err = old.Validate(ctx, tokNew)
	require.ErrorIs(t, err, session.ErrNotFound)
}

func testSessionStats(e *env) {
	w := newSessionWorld(e)
	t, ctx := w.t, w.ctx
	const shards = 8
	m := w.manager(nil, &session.Options{IdleTimeout: 30 * time.Minute, Shards: shards})
	var groupA []string
	for i := range 20 {
		tok, _, err := m.Create(ctx, "u"+strconv.Itoa(i/2), "t", session.Meta{})
		require.NoError(t, err)
		groupA = append(groupA, tok)
	}
	w.advance(20 * time.Minute)
	var idsB []string
	usersB := map[string]bool{}
	for i := range 10 {
		u := "u" + strconv.Itoa(5+i)
		_, s, err := m.Create(ctx, u, "t", session.Meta{})
		require.NoError(t, err)
		idsB = append(idsB, s.ID)
		usersB[u] = true
	}
	// Revoke 3 of B (users u5, u6, u7) and both of u0's (in A).
	for i := range 3 {
		require.NoError(t, m.RevokeByID(ctx, "u"+strconv.Itoa(5+i), idsB[i]))
		delete(usersB, "u"+strconv.Itoa(5+i))
	}
	n, err := m.RevokeAll(ctx, "u0")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, _ = m.Validate(ctx, "not a token")
	_, _ = m.Validate(ctx, strings.Repeat("ab", 32))

	st, err := m.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, session.Stats{Live: 25, Users: 14, Created: 30, Revoked: 5, Expired: 0, InvalidTokens: 2, MalformedTokens: 1}, st,
		"before expiry: A's 18 and B's 7 live, users u1..u14")

	w.advance(15 * time.Minute) // A (last seen at 0) is past its 30 min idle timeout
	st, err = m.Stats(ctx)
	require.NoError(t, err)
	want := session.Stats{Live: 7, Users: int64(len(usersB)), Created: 30, Revoked: 5, Expired: 18, InvalidTokens: 2, MalformedTokens: 1}
	assert.Equal(t, want, st, "after A expired, before cleanup")

	removed := 0
	for range shards {
		n, err := m.Cleanup(ctx)
		require.NoError(t, err)
		removed += n
	}
	assert.Equal(t, 18, removed, "cleanup removed every expired session")
	n2, err := m.Cleanup(ctx)
	require.NoError(t, err)
	assert.Zero(t, n2, "and nothing twice")
	st, err = m.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, st, "after cleanup: the same figures")
	for _, tok := range groupA[2:4] {
		_, err := m.Validate(ctx, tok)
		require.ErrorIs(t, err, session.ErrNotFound)
	}
	// Of A nothing is left but token pointers (which expire with the
	// absolute timeout): the store holds the records of B's 7 live sessions.
	records := 0
	for k := range w.dump() {
		if strings.Contains(k, "}:r:") {
			records++
		}
	}
	assert.Equal(t, 7, records, "records left after revokes and cleanup")
	list, err := m.List(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, list)
}
