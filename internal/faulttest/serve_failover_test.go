package faulttest

import (
	"bufio"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/internal/redistest"
)

// demoSessions signs every demo user in n times (so that the sessions sit
// on as many shards, so masters, as there are users) and returns the
// tokens.
func (c *serveClient) demoSessions(t *testing.T, n int) []string {
	t.Helper()
	var toks []string
	for _, tenant := range demo.Tenants {
		for _, role := range []string{demo.RoleOwner, demo.RoleClerk} {
			for range n {
				tok, _ := c.mustLogin(t, tenant, role+"@"+tenant+".test")
				toks = append(toks, tok)
			}
		}
	}
	return toks
}

// waitAllValid polls until every token is served the device list (its
// session validates) and returns how long after since that was; a token
// still refused (401) after limit is a lost session and fails the test.
func (c *serveClient) waitAllValid(t *testing.T, toks []string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	pending := toks
	for len(pending) > 0 {
		var still []string
		var last string
		for _, tok := range pending {
			r, err := c.get("/v1/sessions", tok)
			if err != nil || r.Status != http.StatusOK {
				still = append(still, tok)
				last = fmt.Sprint(r, err)
				if r != nil {
					last = strconv.Itoa(r.Status)
				}
			}
		}
		pending = still
		if len(pending) > 0 && time.Since(since) > limit {
			t.Fatalf("%d of %d sessions created before the failover not valid %v after it (last: %s)", len(pending), len(toks), limit, last)
		}
	}
	return time.Since(since)
}

// serverGoroutines reads go_goroutines from the server's /metrics.
func (c *serveClient) serverGoroutines(t *testing.T) int {
	t.Helper()
	r, err := c.get("/metrics", "")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("/metrics: %v %v", r, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatal("/metrics has no go_goroutines")
	return 0
}

// readyzWatch polls /readyz from one goroutine until stopped, counting
// 200s and 503s; it is how a test sees whether the server went not-ready
// during a fault, and came back.
type readyzWatch struct {
	crew                // its one goroutine; a problem is an answer neither 200 nor 503
	up, down  int       // under mu
	firstDown time.Time // under mu
}

func watchReadyz(t *testing.T, c *serveClient) *readyzWatch {
	w := &readyzWatch{crew: crew{stop: make(chan struct{})}}
	w.wg.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond): // pacing, not synchronisation
			}
			r, err := c.get("/readyz", "")
			now := time.Now()
			w.mu.Lock()
			switch {
			case err == nil && r.Status == http.StatusOK:
				w.up++
			case err == nil && r.Status == http.StatusServiceUnavailable:
				w.down++
				if w.firstDown.IsZero() {
					w.firstDown = now
				}
			default:
				w.problemLocked("/readyz answered neither 200 nor 503: " + fmt.Sprint(r, err))
			}
			w.mu.Unlock()
		}
	})
	t.Cleanup(w.halt)
	return w
}

// take returns the counts since the last take (or the start) and the
// time of the first 503 among them, and starts counting afresh.
func (w *readyzWatch) take() (up, down int, firstDown time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	up, down, firstDown = w.up, w.down, w.firstDown
	w.up, w.down, w.firstDown = 0, 0, time.Time{}
	return up, down, firstDown
}

// finish stops the watch and fails the test on an answer that was neither
// 200 nor 503.
func (w *readyzWatch) finish(t *testing.T) {
	t.Helper()
	w.report(t)
}

// masterHolding returns the master among masters that holds a key whose
// name contains part (a session id: its record's master).
func masterHolding(t *testing.T, masters []string, part string) string {
	t.Helper()
	for _, m := range masters {
		r, err := redistest.Do(m, "SCAN", "0", "MATCH", "*"+part+"*", "COUNT", "100000")
		a, _ := r.([]any)
		if err != nil || len(a) != 2 {
			t.Fatalf("SCAN on %s: %v %v", m, r, err)
		}
		if keys, _ := a[1].([]any); len(keys) > 0 {
			return m
		}
	}
	t.Fatalf("no master among %v holds a key with %q", masters, part)
	return ""
}

// failoverRun is one `karat serve` on a failing-over Redis, with the
// sessions made before the fault, the traffic and the /readyz watch.
type failoverRun struct {
	c          *serveClient
	toks       []string
	tr         *httpTraffic
	rz         *readyzWatch
	before     int // the test process's goroutines before any request
	serverGors int // the server's goroutines before the traffic
}

// startFailoverRun starts `karat serve` over url on drv, signs in a token
// for the traffic (returning its session id) and 4 sessions per demo user,
// and waits until every master has replicated them (masters reports the
// current masters) so that the failover loses none of them.
func startFailoverRun(t *testing.T, url, drv string, masters func() []string) (*failoverRun, string) {
	t.Helper()
	srv := startServe(t, url, drv)
	fr := &failoverRun{before: runtime.NumGoroutine()}
	fr.c = newServeClient(srv)
	token, id := fr.c.mustLogin(t, demoTenant, demoOwner)
	fr.toks = append(fr.c.demoSessions(t, 4), token)
	for _, m := range masters() {
		replicated(t, m)
	}
	fr.serverGors = fr.c.serverGoroutines(t)
	fr.tr = startHTTPTraffic(t, fr.c, token, 4)
	fr.rz = watchReadyz(t, fr.c)
	t.Cleanup(func() {
		if !srv.Running() {
			t.Errorf("karat serve exited during the test:\n%s", srv.Log())
		}
	})
	return fr, id
}

// recovered waits, from the moment the new primary took over, for /readyz,
// for service (a login, a session validation, a KPI read) and for every
// session made before the fault, asserts each within recoveryBound, and
// returns the three times.
func (fr *failoverRun) recovered(t *testing.T, promoted time.Time) (readyAt, serviceAt, validAt time.Duration) {
	t.Helper()
	readyAt, serviceAt = fr.c.waitBack(t, promoted)
	validAt = fr.c.waitAllValid(t, fr.toks, promoted, 10*time.Second)
	if readyAt > recoveryBound || serviceAt > recoveryBound || validAt > recoveryBound {
		t.Errorf("after the new primary took over: /readyz 200 in %v, service in %v, all %d earlier sessions valid in %v; want each within %v",
			readyAt, serviceAt, len(fr.toks), validAt, recoveryBound)
	}
	return readyAt, serviceAt, validAt
}

// finish stops the traffic and the watch, fails the test on a problem the
// traffic saw or on a refused earlier session (401: a lost session), checks
// that neither process leaked goroutines, and returns the statuses, the
// slowest request and the /readyz counts.
func (fr *failoverRun) finish(t *testing.T) (string, time.Duration) {
	t.Helper()
	statuses, slowest := fr.tr.finish(t)
	fr.rz.finish(t)
	for route, byStatus := range statuses {
		for status, n := range byStatus {
			switch status {
			case http.StatusOK, http.StatusCreated, http.StatusServiceUnavailable:
			case http.StatusUnauthorized:
				t.Errorf("%s: %d responses 401: the traffic's session was lost, or a login refused", route, n)
			default:
				t.Errorf("%s: %d responses %d, want only 200, 201 and 503", route, n, status)
			}
		}
	}
	// The server's goroutines: back to (about) their count before the
	// traffic once the client's connections are closed. The slack covers
	// a driver's connection to a node it did not know before (a replica
	// that became master).
	fr.c.close()
	deadline := time.Now().Add(15 * time.Second)
	var n int
	for {
		fr.c.close()
		n = fr.c.serverGoroutines(t)
		if n <= fr.serverGors+serverGoroutineSlack {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("karat serve's goroutines: %d before the traffic, %d 15 s after it stopped", fr.serverGors, n)
			break
		}
		time.Sleep(50 * time.Millisecond) // polling up to a deadline
	}
	fr.c.close()
	goroutinesBack(t, fr.before)
	return fmt.Sprintf("statuses %v; server goroutines %d → %d", statuses, fr.serverGors, n), slowest
}

// serverGoroutineSlack is how many more goroutines karat serve may run
// after a failover than before it (see failoverRun.finish): up to 8 were
// seen (the drivers' connections to nodes that changed roles); a leak of
// one goroutine per failed request would add hundreds.
const serverGoroutineSlack = 20

// TestServeClusterFailover drives `karat serve`, started with a
// redis+cluster:// URL, on both drivers, under HTTP traffic, through a
// cluster master killed with SIGKILL (its replica elected after
// cluster-node-timeout) and then a planned CLUSTER FAILOVER. The killed
// master is the one holding the traffic's session, so the outage is seen.
// See RELIABILITY.md for what is asserted.
func TestServeClusterFailover(t *testing.T) {
	cl := redistest.NewFailoverCluster(t)
	for _, drv := range driverNames {
		t.Run(drv, func(t *testing.T) {
			fr, id := startFailoverRun(t, cl.URL, drv, cl.Masters)
			time.Sleep(300 * time.Millisecond) // traffic before the fault (not synchronisation)

			// Unplanned: kill the master of the traffic's session.
			masters, replicaOf := cl.Roles()
			victim := masterHolding(t, masters, id)
			heir := replicaFor(t, replicaOf, victim)
			fr.rz.take()
			killed := time.Now()
			cl.Node(victim).Kill()
			promoted := waitRole(t, heir, "master", 30*time.Second)
			readyAt, serviceAt, validAt := fr.recovered(t, promoted)
			up, down, _ := fr.rz.take()
			figure(t, "karat serve, cluster master killed: replica promoted %v after the kill; after the promotion /readyz 200 in %v, login + validation + KPIs in %v, all %d earlier sessions valid in %v; /readyz from the kill to then: %d×200, %d×503",
				promoted.Sub(killed).Round(time.Millisecond), readyAt.Round(time.Millisecond), serviceAt.Round(time.Millisecond), len(fr.toks), validAt.Round(time.Millisecond), up, down)
			cl.Node(victim).Start() // it comes back as a replica of its heir
			if err := cl.WaitHealthy(60 * time.Second); err != nil {
				t.Fatal(err)
			}

			// Planned: CLUSTER FAILOVER on the replica of the master that
			// now holds the traffic's session.
			masters, replicaOf = cl.Roles()
			master := masterHolding(t, masters, id)
			replica := replicaFor(t, replicaOf, master)
			for _, m := range masters {
				replicated(t, m)
			}
			fr.rz.take()
			asked := time.Now()
			if r, err := redistest.Do(replica, "CLUSTER", "FAILOVER"); err != nil || r != "OK" {
				t.Fatalf("CLUSTER FAILOVER: %v %v", r, err)
			}
			promoted = waitRole(t, replica, "master", 30*time.Second)
			readyAt, serviceAt, validAt = fr.recovered(t, promoted)
			up, down, _ = fr.rz.take()
			figure(t, "karat serve, CLUSTER FAILOVER: replica promoted %v after the command; after the promotion /readyz 200 in %v, login + validation + KPIs in %v, all %d earlier sessions valid in %v; /readyz from the command to then: %d×200, %d×503",
				promoted.Sub(asked).Round(time.Millisecond), readyAt.Round(time.Millisecond), serviceAt.Round(time.Millisecond), len(fr.toks), validAt.Round(time.Millisecond), up, down)
			if err := cl.WaitHealthy(60 * time.Second); err != nil {
				t.Fatal(err)
			}
			summary, slowest := fr.finish(t)
			figure(t, "karat serve, cluster: %s; slowest request %v", summary, slowest)
		})
	}
}

// replicaFor returns the replica of master in replicaOf.
func replicaFor(t *testing.T, replicaOf map[string]string, master string) string {
	t.Helper()
	for r, m := range replicaOf {
		if m == master {
			return r
		}
	}
	t.Fatalf("no replica of %s in %v", master, replicaOf)
	return ""
}

// TestServeSentinelFailover drives `karat serve`, started with a
// redis+sentinel:// URL, on both drivers, under HTTP traffic, through a
// Sentinel failover of the primary: planned (SENTINEL FAILOVER) and
// unplanned (the primary killed with SIGKILL). See RELIABILITY.md for what
// is asserted.
func TestServeSentinelFailover(t *testing.T) {
	for _, drv := range driverNames {
		for _, how := range []string{"planned", "killed"} {
			t.Run(drv+"/"+how, func(t *testing.T) {
				sn := redistest.NewFailoverSentinel(t)
				fr, _ := startFailoverRun(t, sn.URL, drv, func() []string { return []string{sn.Primary.Addr} })
				time.Sleep(300 * time.Millisecond) // traffic before the fault (not synchronisation)

				fr.rz.take()
				start := time.Now()
				switched := sentinelFailover(t, sn, how)
				readyAt, serviceAt, validAt := fr.recovered(t, switched)
				up, down, firstDown := fr.rz.take()
				if how == "killed" {
					// The primary is gone until the replica is promoted:
					// /readyz must say so, within a second.
					if down == 0 {
						t.Errorf("/readyz never answered 503 while the primary was dead (%d×200)", up)
					} else if d := firstDown.Sub(start); d > time.Second+callSlack {
						t.Errorf("/readyz first answered 503 %v after the kill, want within 1 s", d)
					}
				}
				summary, slowest := fr.finish(t)
				figure(t, "karat serve, sentinel %s failover: new primary named %v after the start; after that /readyz 200 in %v, login + validation + KPIs in %v, all %d earlier sessions valid in %v; /readyz from the start to then: %d×200, %d×503 (first %v after the start); %s; slowest request %v",
					how, switched.Sub(start).Round(time.Millisecond), readyAt.Round(time.Millisecond), serviceAt.Round(time.Millisecond),
					len(fr.toks), validAt.Round(time.Millisecond), up, down, sinceOrNone(firstDown, start), summary, slowest)
			})
		}
	}
}

// sinceOrNone is firstDown - start, or "none" when there was no 503.
func sinceOrNone(firstDown, start time.Time) string {
	if firstDown.IsZero() {
		return "none"
	}
	return firstDown.Sub(start).Round(time.Millisecond).String()
}
