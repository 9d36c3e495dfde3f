package drivers_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

var redisDrivers = []string{"rueidis", "goredis"}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// withDriver adds driver=d to a URL.
func withDriver(u, d string) string {
	if strings.Contains(u, "?") {
		return u + "&driver=" + d
	}
	return u + "?driver=" + d
}

// TestOpenFailsFastWhenRefused: Open against a server (or sentinel, or
// cluster seed) that refuses connections fails well before a 2s deadline,
// with ErrUnavailable and the cause. go-redis over Sentinel used to block
// until the deadline and report only the deadline.
func TestOpenFailsFastWhenRefused(t *testing.T) {
	dead := refusedAddr(t)
	for _, base := range []string{"redis://" + dead, "redis+sentinel://" + dead + "/mymaster", "redis+cluster://" + dead} {
		for _, d := range redisDrivers {
			u := withDriver(base, d)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			s, err := drivers.Open(ctx, u)
			took := time.Since(start)
			cancel()
			if s != nil {
				s.Close()
			}
			t.Logf("%s: %v in %v", u, err, took)
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("Open(%s) = %v; want ErrUnavailable with connection refused", u, err)
			}
			if took > time.Second {
				t.Errorf("Open(%s) took %v, more than half its 2s deadline", u, took)
			}
		}
	}
}

// TestOpenHonoursDeadline: a TLS client talking to a plaintext server waits
// for a handshake that never comes. Open returns by its deadline anyway
// (rueidis used to take its 5s dial timeout whatever the deadline).
func TestOpenHonoursDeadline(t *testing.T) {
	srv := redistest.Single(t)
	for _, d := range redisDrivers {
		u := withDriver("rediss://"+srv.Addr, d)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		s, err := drivers.Open(ctx, u)
		took := time.Since(start)
		cancel()
		if s != nil {
			s.Close()
		}
		t.Logf("%s: %v in %v", u, err, took)
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Open(%s) = %v; want ErrUnavailable with the deadline", u, err)
		}
		if took > 2*time.Second { // the deadline, and generous slack for a loaded machine
			t.Errorf("Open(%s) took %v with a 300ms deadline", u, took)
		}
	}
}

// TestOpenWithoutDeadlineIsBounded: with no deadline in its context Open
// still returns, within DefaultOpenTimeout.
func TestOpenWithoutDeadlineIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to DefaultOpenTimeout; skipped with -short")
	}
	srv := redistest.Single(t)
	for _, d := range redisDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			u := withDriver("rediss://"+srv.Addr, d)
			start := time.Now()
			s, err := drivers.Open(context.Background(), u)
			took := time.Since(start)
			if s != nil {
				s.Close()
			}
			t.Logf("%s: %v in %v", u, err, took)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Open(%s) = %v; want ErrUnavailable", u, err)
			}
			if took > drivers.DefaultOpenTimeout+3*time.Second {
				t.Errorf("Open(%s) took %v without a deadline", u, took)
			}
		})
	}
}

// TestConfigErrors: a wrong password, an unknown user, a database the
// server does not have, a command the user may not run and a certificate
// that does not verify are store.ErrConfig on both drivers, never
// ErrUnavailable: retrying does not help. (rueidis reported them as
// ErrUnavailable, go-redis as no store class.)
func TestConfigErrors(t *testing.T) {
	srv := redistest.NewPrivate(t,
		"--user", "karat", "on", ">right", "~*", "&*", "+@all",
		"--user", "pinger", "on", ">pw", "-@all", "+@connection")
	tlsSrv := redistest.TLSServers(t)
	ctx := context.Background()
	for _, d := range redisDrivers {
		t.Run(d, func(t *testing.T) {
			ok, err := drivers.Open(ctx, withDriver("redis://karat:right@"+srv.Addr, d))
			if err != nil {
				t.Fatalf("the right password: %v", err)
			}
			ok.Close()
			for _, u := range []string{
				"redis://karat:wrong@" + srv.Addr,
				"redis://nobody:pw@" + srv.Addr,
				"redis://" + srv.Addr + "/99",
				"rediss://" + tlsSrv.Addr, // the test CA is not trusted
			} {
				s, err := drivers.Open(ctx, withDriver(u, d))
				if s != nil {
					s.Close()
				}
				if !errors.Is(err, store.ErrConfig) || errors.Is(err, store.ErrUnavailable) {
					t.Errorf("Open(%s) = %v; want ErrConfig and not ErrUnavailable", u, err)
				}
			}
			s, err := drivers.Open(ctx, withDriver("redis://pinger:pw@"+srv.Addr+"?client_cache=0", d))
			if err != nil {
				t.Fatalf("a user that may PING: %v", err)
			}
			defer s.Close()
			_, err = s.Get(ctx, "k")
			if !errors.Is(err, store.ErrConfig) || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("GET by a user without the permission = %v; want ErrConfig", err)
			}
		})
	}
}

// TestFailFastWhileDown: with the server stopped (connections refused), a
// call with a 1s deadline fails with ErrUnavailable and the cause well
// before the deadline, on both drivers, and the store recovers by itself
// when the server is back on the same port. The time is logged; only a
// generous bound (half the deadline) is asserted. rueidis took 0.72-0.95s,
// go-redis the whole second and reported only the deadline.
func TestFailFastWhileDown(t *testing.T) {
	srv := redistest.NewPrivate(t)
	ctx := context.Background()
	stores := map[string]store.Store{}
	for _, d := range redisDrivers {
		s, err := drivers.Open(ctx, withDriver(srv.URL, d))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Set(ctx, "k", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		stores[d] = s
	}
	srv.Stop()
	for _, d := range redisDrivers {
		s := stores[d]
		calls := map[string]func(context.Context) error{
			"Get":  func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
			"Set":  func(ctx context.Context) error { return s.Set(ctx, "k", []byte("v"), 0) },
			"Ping": s.Ping,
		}
		if cr, ok := store.Capability[store.CachedReader](s); ok {
			calls["GetCached"] = func(ctx context.Context) error { _, err := cr.GetCached(ctx, "k2", time.Second); return err }
		}
		// The first calls may meet connections the server closed (EOF)
		// rather than a refused dial: rueidis keeps several, each found
		// dead by the first command sent on it. They fail fast too.
		for name, call := range calls {
			for range 20 {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				start := time.Now()
				err := call(cctx)
				took := time.Since(start)
				cancel()
				if !errors.Is(err, store.ErrUnavailable) || took > 500*time.Millisecond {
					t.Errorf("%s %s just after the stop = %v in %v; want ErrUnavailable, fast", d, name, err, took)
				}
			}
		}
		for name, call := range calls {
			var worst time.Duration
			for range 5 {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				start := time.Now()
				err := call(cctx)
				took := time.Since(start)
				cancel()
				worst = max(worst, took)
				if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("%s %s while down = %v; want ErrUnavailable with connection refused", d, name, err)
				}
			}
			t.Logf("%s %s while down: slowest of 5 failed in %v", d, name, worst)
			if worst > 500*time.Millisecond {
				t.Errorf("%s %s took %v to fail, more than half its 1s deadline", d, name, worst)
			}
		}
	}
	srv.Start()
	for _, d := range redisDrivers {
		s := stores[d]
		start := time.Now()
		deadline := start.Add(15 * time.Second)
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := s.Set(cctx, "k", []byte("back"), 0)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not recovered 15s after the server came back: %v", d, err)
			}
			time.Sleep(10 * time.Millisecond) // polling a real server, not waiting for a TTL
		}
		t.Logf("%s recovered %v after the server came back", d, time.Since(start))
		v, err := s.Get(ctx, "k")
		if err != nil || string(v) != "back" {
			t.Errorf("%s after recovery: Get = %q, %v", d, v, err)
		}
	}
}
