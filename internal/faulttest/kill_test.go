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
			underTraffic(t, srv.URL, drv, 8, func(st *stack) {
				srv.Kill()
				st.waitFailing(t)
				checkFailModes(t, st.rl)
				time.Sleep(500 * time.Millisecond) // stay down a while, under traffic
				srv.Start()
			}, "kill -9 + restart on the same port: every layer back %v after the server answered")
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
			underTraffic(t, "redis://"+proxy.Addr, drv, 8, func(st *stack) {
				proxy.Stall()
				st.waitFailing(t)
				checkFailModes(t, st.rl)
				time.Sleep(time.Second) // stay stalled a while, under traffic
				proxy.Resume()
			}, "stalled connection resumed: every layer back %v after")
		})
	}
}

// TestStallThenKill stalls the connection, then kills the server behind the
// stall and brings it back: the client must drop its stuck connections and
// reconnect, not wait on them forever.
func TestStallThenKill(t *testing.T) {
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			srv := redistest.NewKillable(t, redistest.NoPersistence)
			proxy := redistest.NewProxy(t, srv.Addr)
			underTraffic(t, "redis://"+proxy.Addr, drv, 4, func(st *stack) {
				proxy.Stall()
				st.waitFailing(t)
				srv.Kill()
				proxy.Resume() // the held connections now meet a dead server
				srv.Start()
			}, "stall, then kill -9 and restart behind it: back %v after the server answered")
		})
	}
}

// underTraffic opens a store on url with driver drv and the layers on it,
// runs traffic from workers goroutines, lets it run, calls fault (which
// breaks the server and brings it back), then checks that every layer
// recovers within recoveryBound (recorded with figure, whose format takes
// the time), that the traffic saw no problem, that the store closes and
// that no goroutine is left behind.
func underTraffic(t *testing.T, url, drv string, workers int, fault func(st *stack), format string) {
	t.Helper()
	before := runtime.NumGoroutine()
	s := openStore(t, withDriver(url, drv))
	st := newStack(t, s, nil)
	tr := startTraffic(t, st, workers)
	time.Sleep(300 * time.Millisecond) // let traffic run before the fault (not synchronisation)
	fault(st)
	took := st.waitRecovered(t, recoveryBound)
	figure(t, format, took.Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond) // traffic after recovery
	tr.finish(t)
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	goroutinesBack(t, before)
}
