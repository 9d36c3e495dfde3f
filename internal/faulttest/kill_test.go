package faulttest

import (
	"runtime"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/redistest"
)

// TestKillRestart kills redis-server with SIGKILL under traffic on every
// layer, checks the fail modes while it is down, starts it again on the same
// port and measures how soon every layer works again.
func TestKillRestart(t *testing.T) {
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			before := runtime.NumGoroutine()
			s := openStore(t, withDriver(srv.URL, drv))
			st := newStack(t, s, nil)
			tr := startTraffic(t, st, 8)
			time.Sleep(300 * time.Millisecond) // let traffic run before the fault (not synchronisation)

			srv.Kill()
			st.waitFailing(t)
			checkFailModes(t, st.rl)
			time.Sleep(500 * time.Millisecond) // stay down a while, under traffic

			srv.Start()
			took := st.waitRecovered(t, recoveryBound)
			figure(t, "kill -9 + restart on the same port: every layer back %v after the server answered", took.Round(time.Millisecond))
			time.Sleep(200 * time.Millisecond) // traffic after recovery
			tr.finish(t)
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			goroutinesBack(t, before)
		})
	}
}

// TestStall stalls every connection to the server (a silent partition:
// nothing is closed, bytes stop) under traffic, then resumes it.
func TestStall(t *testing.T) {
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			proxy := redistest.NewProxy(t, srv.Addr)
			before := runtime.NumGoroutine()
			s := openStore(t, withDriver("redis://"+proxy.Addr, drv))
			st := newStack(t, s, nil)
			tr := startTraffic(t, st, 8)
			time.Sleep(300 * time.Millisecond) // let traffic run before the fault (not synchronisation)

			proxy.Stall()
			st.waitFailing(t)
			checkFailModes(t, st.rl)
			time.Sleep(time.Second) // stay stalled a while, under traffic

			proxy.Resume()
			took := st.waitRecovered(t, recoveryBound)
			figure(t, "stalled connection resumed: every layer back %v after", took.Round(time.Millisecond))
			time.Sleep(200 * time.Millisecond)
			tr.finish(t)
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			goroutinesBack(t, before)
		})
	}
}

// TestStallThenDrop stalls the connection, then kills the server behind the
// stall and brings it back: the client must drop its stuck connections and
// reconnect, not wait on them forever.
func TestStallThenKill(t *testing.T) {
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			proxy := redistest.NewProxy(t, srv.Addr)
			before := runtime.NumGoroutine()
			s := openStore(t, withDriver("redis://"+proxy.Addr, drv))
			st := newStack(t, s, nil)
			tr := startTraffic(t, st, 4)
			time.Sleep(200 * time.Millisecond) // let traffic run before the fault (not synchronisation)

			proxy.Stall()
			st.waitFailing(t)
			srv.Kill()
			proxy.Resume() // the held connections now meet a dead server
			srv.Start()
			took := st.waitRecovered(t, recoveryBound)
			figure(t, "stall, then kill -9 and restart behind it: back %v after the server answered", took.Round(time.Millisecond))
			tr.finish(t)
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			goroutinesBack(t, before)
		})
	}
}
