package faulttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/session"
)

// sessionsOn creates n sessions (users spread over every shard, so over
// every master of a cluster) and returns their tokens.
func sessionsOn(t *testing.T, st *stack, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	toks := make([]string, n)
	for i := range toks {
		tok, _, err := st.sess.Create(ctx, fmt.Sprint("user-", i), "shop", session.Meta{Device: "d"})
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		toks[i] = tok
	}
	return toks
}

// allValid polls until every token validates, bounded by limit, and
// returns how long it took; tokens that never validate are lost sessions.
func allValid(t *testing.T, st *stack, toks []string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	pending := append([]string(nil), toks...)
	var last error
	for len(pending) > 0 {
		var still []string
		for _, tok := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := st.sess.Validate(ctx, tok)
			cancel()
			if err != nil {
				last = err
				still = append(still, tok)
			}
		}
		pending = still
		if len(pending) > 0 && time.Since(start) > limit {
			t.Fatalf("%d of %d sessions not valid %v after the failover: %v", len(pending), len(toks), limit, last)
		}
	}
	return time.Since(start)
}

// sentinelFailover fails sn's primary over, "planned" (SENTINEL FAILOVER)
// or "killed" (kill -9), polls until the sentinel names the replica as the
// primary (the switch is done), and returns when it did.
func sentinelFailover(t *testing.T, sn *redistest.FailoverSentinel, how string) time.Time {
	t.Helper()
	if how == "planned" {
		if r, err := redistest.Do(sn.Sentinel, "SENTINEL", "FAILOVER", sn.MasterName); err != nil || r != "OK" {
			t.Fatalf("SENTINEL FAILOVER: %v %v", r, err)
		}
	} else {
		sn.Primary.Kill()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, err := sn.MasterAddr()
		if err == nil && a == sn.Replica.Addr {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel still names %s (%v)", a, err)
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
}

// replicated waits until master's every replica has acknowledged its
// replication stream up to where it stood when replicated was called, so
// that a failover loses nothing written before. Not "up to now": replicas
// acknowledge once a second, so under continuous traffic an acknowledged
// offset never equals the master's current one.
func replicated(t *testing.T, master string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	target := int64(-1)
	for {
		r, err := redistest.Do(master, "INFO", "replication")
		info, _ := r.(string)
		if err == nil {
			off, offs := replicationOffsets(info)
			if target < 0 && off >= 0 {
				target = off
			}
			caughtUp := target >= 0 && len(offs) > 0
			for _, o := range offs {
				if o < target {
					caughtUp = false
				}
			}
			if caughtUp {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replicas of %s did not reach offset %d: %v %q", master, target, err, info)
		}
		time.Sleep(20 * time.Millisecond) // polling up to a deadline
	}
}

// replicationOffsets reads INFO replication: the master's offset (-1 if
// absent) and each replica's acknowledged one.
func replicationOffsets(info string) (master int64, replicas []int64) {
	master = -1
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				master = n
			}
		}
		if strings.HasPrefix(line, "slave") {
			for _, f := range strings.Split(line, ",") {
				if v, ok := strings.CutPrefix(f, "offset="); ok {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						n = -1
					}
					replicas = append(replicas, n)
				}
			}
		}
	}
	return master, replicas
}

// waitRole polls until the node at addr reports role ("master" or
// "slave"), and returns when it did.
func waitRole(t *testing.T, addr, role string, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r, err := redistest.Do(addr, "ROLE")
		if a, _ := r.([]any); err == nil && len(a) > 0 && a[0] == role {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not %s after %v: %v %v", addr, role, limit, r, err)
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
}

// TestClusterFailover runs, on a private 3-master cluster with a replica
// each, an unplanned failover (a master killed with SIGKILL, its replica
// elected after cluster-node-timeout), a planned one (CLUSTER FAILOVER on a
// replica) and a stalled master (CLIENT PAUSE for 2 s), each under traffic,
// on both drivers: no session lost, every call typed and in time, service
// back within 2 s of the promotion (or of the pause's end).
func TestClusterFailover(t *testing.T) {
	c := redistest.NewFailoverCluster(t)
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s := openStore(t, withDriver(c.URL, drv))
			st := newStack(t, s, nil)
			toks := sessionsOn(t, st, 64)
			for _, m := range c.Masters() {
				replicated(t, m) // so that a failover loses none of them
			}
			tr := startTraffic(t, st, 8)

			// Unplanned: kill a master.
			masters, replicaOf := c.Roles()
			victim := masters[0]
			var heir string
			for r, m := range replicaOf {
				if m == victim {
					heir = r
				}
			}
			if heir == "" {
				t.Fatalf("no replica of %s in %v", victim, replicaOf)
			}
			killed := time.Now()
			c.Node(victim).Kill()
			promoted := waitRole(t, heir, "master", 30*time.Second)
			took := st.waitRecovered(t, recoveryBound)
			valid := allValid(t, st, toks, recoveryBound-took)
			figure(t, "master killed: replica promoted %v after the kill; layers back %v after the promotion; all %d sessions valid %v after that",
				promoted.Sub(killed).Round(time.Millisecond), took.Round(time.Millisecond), len(toks), valid.Round(time.Millisecond))
			c.Node(victim).Start() // it comes back as a replica of its heir
			if err := c.WaitHealthy(60 * time.Second); err != nil {
				t.Fatal(err)
			}

			// Planned: CLUSTER FAILOVER on a replica.
			masters, replicaOf = c.Roles()
			var replica, master string
			for r, m := range replicaOf {
				if r != victim { // not the node that has just rejoined
					replica, master = r, m
					break
				}
			}
			_ = master // CLUSTER FAILOVER waits for the replica to catch up itself
			asked := time.Now()
			if r, err := redistest.Do(replica, "CLUSTER", "FAILOVER"); err != nil || r != "OK" {
				t.Fatalf("CLUSTER FAILOVER: %v %v", r, err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					log, _ := os.ReadFile(filepath.Join(c.Node(replica).Dir, "redis.log"))
					t.Logf("log of %s:\n%s", replica, log[max(0, len(log)-3000):])
				}
			})
			promoted = waitRole(t, replica, "master", 30*time.Second)
			took = st.waitRecovered(t, recoveryBound)
			valid = allValid(t, st, toks, recoveryBound-took)
			figure(t, "CLUSTER FAILOVER: replica promoted %v after the command; layers back %v after; all %d sessions valid %v after that",
				promoted.Sub(asked).Round(time.Millisecond), took.Round(time.Millisecond), len(toks), valid.Round(time.Millisecond))
			if err := c.WaitHealthy(60 * time.Second); err != nil {
				t.Fatal(err)
			}
			_ = masters

			// Stalled: a master holds every client's commands for 2 s
			// (CLIENT PAUSE ALL; a proxy cannot sit between a cluster
			// client and the addresses the cluster announces). Calls to
			// its slots time out, typed and in time (the traffic checks);
			// the layers work again as soon as it answers.
			const pause = 2 * time.Second
			stalled := c.Masters()[0]
			pausedAt := time.Now()
			if err := redistest.PauseClients(stalled, pause); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(pausedAt.Add(pause))) // the fault lasts this long (not synchronisation)
			took = st.waitRecovered(t, recoveryBound)
			valid = allValid(t, st, toks, recoveryBound-took)
			figure(t, "master paused %v: layers back %v after the pause ended; all %d sessions valid %v after that",
				pause, took.Round(time.Millisecond), len(toks), valid.Round(time.Millisecond))

			tr.finish(t)
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			goroutinesBack(t, before)
		})
	}
}

// TestSentinelFailover fails a Sentinel-watched primary over, planned
// (SENTINEL FAILOVER) and unplanned (the primary killed with SIGKILL), under
// traffic, on both drivers.
func TestSentinelFailover(t *testing.T) {
	for _, drv := range driverNames {
		for _, how := range []string{"planned", "killed"} {
			t.Run(drv+"/"+how, func(t *testing.T) {
				sn := redistest.NewFailoverSentinel(t)
				before := runtime.NumGoroutine()
				s := openStore(t, withDriver(sn.URL, drv))
				st := newStack(t, s, nil)
				toks := sessionsOn(t, st, 16)
				replicated(t, sn.Primary.Addr) // so that the failover loses none of them
				tr := startTraffic(t, st, 8)
				time.Sleep(200 * time.Millisecond) // traffic before the fault (not synchronisation)

				start := time.Now()
				switched := sentinelFailover(t, sn, how)
				took := st.waitRecovered(t, recoveryBound)
				valid := allValid(t, st, toks, recoveryBound-took)
				figure(t, "sentinel %s failover: new primary named %v after the start; layers back %v after; all %d sessions valid %v after that",
					how, switched.Sub(start).Round(time.Millisecond), took.Round(time.Millisecond), len(toks), valid.Round(time.Millisecond))
				tr.finish(t)
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
				goroutinesBack(t, before)
			})
		}
	}
}
