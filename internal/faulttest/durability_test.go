package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

// durablePolicy is a strict policy whose state must survive a restart.
var durablePolicy = ratelimit.Policy{Name: "durable", Limit: 5, Window: time.Hour, FailMode: ratelimit.FailClosed}

// world is what a durability test writes before the restart.
type world struct {
	live    []string // tokens of sessions left live
	revoked []string // tokens of sessions revoked
	data    map[string]string
}

// write creates 20 sessions, revokes every fourth, updates the others'
// data, counts 7 on a cache counter and uses the durable policy up.
func write(t *testing.T, st *stack) world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := world{data: map[string]string{}}
	for i := range 20 {
		tok, _, err := st.sess.Create(ctx, fmt.Sprint("user-", i%5), "shop", session.Meta{Device: fmt.Sprint("device ", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if err := st.sess.Revoke(ctx, tok); err != nil {
				t.Fatal(err)
			}
			w.revoked = append(w.revoked, tok)
			continue
		}
		sess, err := st.sess.Validate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.sess.Update(ctx, tok, sess.Version, fmt.Sprint("cart ", i)); err != nil {
			t.Fatal(err)
		}
		w.live = append(w.live, tok)
		w.data[tok] = fmt.Sprint("cart ", i)
	}
	for range 7 {
		if _, err := st.cache.Incr(ctx, "shop", "visits", 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		d, err := st.rl.Allow(ctx, durablePolicy, "client", 1)
		if err != nil || !d.Allowed || d.Degraded != nil {
			t.Fatalf("allow %d: %+v %v", i, d, err)
		}
	}
	return w
}

// TestAOFRestart: with the append-only file on, sessions, revocations,
// counters and rate-limit state survive a restart of redis-server, on both
// drivers, in three ways:
//
//   - sigterm: appendfsync everysec, a graceful restart (Redis writes and
//     fsyncs the AOF before it exits);
//   - kill-after-write: appendfsync everysec, SIGKILL once Redis reports
//     its AOF buffer written (aof_buffer_length:0): a process crash loses
//     nothing the kernel holds. Without that wait, a SIGKILL right after
//     the writes lost a live session in this suite: under a busy disk Redis
//     postpones the write (up to 2 s) while a background fsync runs, and
//     replies meanwhile (see RELIABILITY.md);
//   - always-kill: appendfsync always, SIGKILL right after the last reply.
//
// Checked by a fresh store and fresh layers (no in-process memory): every
// live session valid with its data, every revoked one still revoked, the
// counter exact, the rate-limit state kept (the 6th request denied).
func TestAOFRestart(t *testing.T) {
	for _, drv := range driverNames {
		for _, how := range []string{"sigterm", "kill-after-write", "always-kill"} {
			t.Run(drv+"/"+how, func(t *testing.T) {
				persist := redistest.AOFEverySec
				if how == "always-kill" {
					persist = redistest.AOFAlways
				}
				srv := redistest.NewKillable(t, persist)
				ns := testNamespace(t)
				s1 := openStore(t, withDriver(srv.URL, drv))
				w := write(t, newStackIn(t, s1, ns, nil))
				switch how {
				case "sigterm":
					srv.Stop()
				case "kill-after-write":
					if err := srv.WaitAOFWritten(10 * time.Second); err != nil {
						t.Fatal(err)
					}
					srv.Kill()
				default:
					srv.Kill()
				}
				s1.Close()
				start := time.Now()
				srv.Start()
				figure(t, "AOF restart (%s): redis-server answered with its data loaded %v after start", how, time.Since(start).Round(time.Millisecond))
				checkWorld(t, srv, ns, drv, w)
			})
		}
	}
}

// checkWorld checks, through a fresh store and fresh layers, that w
// survived.
func checkWorld(t *testing.T, srv *redistest.Killable, ns store.Namespace, drv string, w world) {
	t.Helper()
	s2 := openStore(t, withDriver(srv.URL, drv))
	defer s2.Close()
	st := newStackIn(t, s2, ns, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tok := range w.live {
		sess, err := st.sess.Validate(ctx, tok)
		if err != nil {
			t.Fatalf("a live session was lost in the restart: %v", err)
		}
		var data string
		if err := sess.Data(&data); err != nil || data != w.data[tok] {
			t.Errorf("session data after the restart: %q %v, want %q", data, err, w.data[tok])
		}
	}
	for _, tok := range w.revoked {
		if _, err := st.sess.Validate(ctx, tok); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("a revoked session came back after the restart: %v", err)
		}
	}
	if n, err := st.cache.Incr(ctx, "shop", "visits", 0); err != nil || n != 7 {
		t.Errorf("cache counter after the restart: %d %v, want 7", n, err)
	}
	d, err := st.rl.Allow(ctx, durablePolicy, "client", 1)
	if err != nil || d.Allowed || d.Degraded != nil {
		t.Errorf("the 6th request after the restart: %+v %v, want denied by the store", d, err)
	}
	stats, err := st.sess.Stats(ctx)
	if err != nil || stats.Live != int64(len(w.live)) {
		t.Errorf("stats after the restart: %+v %v, want %d live", stats, err, len(w.live))
	}
}

// TestNoPersistenceRestart is what RELIABILITY.md says of a server without
// persistence: a restart loses everything (every user logs in again, the
// counters and the rate-limit state start over), and resurrects nothing.
func TestNoPersistenceRestart(t *testing.T) {
	srv := redistest.NewKillable(t, redistest.NoPersistence)
	ns := testNamespace(t)
	s1 := openStore(t, withDriver(srv.URL, "rueidis"))
	w := write(t, newStackIn(t, s1, ns, nil))
	srv.Kill()
	s1.Close()
	srv.Start()
	s2 := openStore(t, withDriver(srv.URL, "rueidis"))
	defer s2.Close()
	st := newStackIn(t, s2, ns, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tok := range append(w.live, w.revoked...) {
		if _, err := st.sess.Validate(ctx, tok); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("without persistence a session outlived the restart: %v", err)
		}
	}
	if n, err := st.cache.Incr(ctx, "shop", "visits", 0); err != nil || n != 0 {
		t.Errorf("counter: %d %v, want 0 (lost)", n, err)
	}
	if d, err := st.rl.Allow(ctx, durablePolicy, "client", 1); err != nil || !d.Allowed || d.Remaining != 4 {
		t.Errorf("rate limit: %+v %v, want a fresh quota (lost)", d, err)
	}
}

// TestAOFLostTail shows what the one second that appendfsync everysec may
// lose on an OS crash or power loss means for a revocation: the AOF is cut
// back to its length before the revocation (exactly what a lost tail is),
// and the server restarted. The revoked session is valid again. The test
// asserts it, so that RELIABILITY.md's warning stays true; with
// appendfsync always (redistest.AOFAlways) a write is fsynced before its
// reply, and no acknowledged revocation can be in a lost tail.
func TestAOFLostTail(t *testing.T) {
	srv := redistest.NewKillable(t, redistest.AOFEverySec)
	s1 := openStore(t, withDriver(srv.URL, "goredis"))
	st := newStack(t, s1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, _, err := st.sess.Create(ctx, "u", "shop", session.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitAOFWritten(10 * time.Second); err != nil {
		t.Fatal(err) // the creation must be in the file before its length is taken
	}
	incr := incrFile(t, srv.Dir)
	fi, err := os.Stat(incr)
	if err != nil {
		t.Fatal(err)
	}
	before := fi.Size()
	if err := st.sess.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	s1.Close()
	if err := os.Truncate(incr, before); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	s2 := openStore(t, withDriver(srv.URL, "goredis"))
	defer s2.Close()
	st2 := newStackIn(t, s2, st.ns, nil)
	if _, err := st2.sess.Validate(ctx, tok); err != nil {
		t.Fatalf("with the revocation's AOF tail lost the session is %v; RELIABILITY.md says it comes back: update it", err)
	}
}

// incrFile returns the AOF's incremental file (Redis 7's multi-part AOF).
func incrFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if err != nil || len(m) != 1 {
		t.Fatalf("incr AOF files: %v %v", m, err)
	}
	return m[0]
}
