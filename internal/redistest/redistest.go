// Package redistest starts real redis-server processes on loopback for
// karat's tests: a single node (Single), a cluster of 3 masters with one
// replica each (ClusterServers), a primary with a replica watched by one
// sentinel (SentinelServers), and a TLS-only server with a certificate made
// by the test (TLSServers). NewProxy puts a TCP proxy that can stall in front
// of any of them, to simulate a silent network partition.
//
// Tests that break servers get servers of their own instead of the shared
// ones: NewPrivate (stopped and restarted on the same port, for fail-fast and
// recovery), NewKillable (SIGKILL or stop, restart on the same port and data
// directory, with AOF everysec or always, for durability), NewFailoverCluster
// (3 masters with a replica each, for killing a master or CLUSTER FAILOVER)
// and NewFailoverSentinel (a primary, a replica and Sentinels, for a
// Sentinel failover). Do sends one command to any address.
//
// Each kind of server starts once per test binary, on first use, and is
// shared by every test in it; a failed start is remembered, so later tests
// fail or skip at once instead of retrying. Packages call Main from TestMain
// so that the servers are stopped (SIGTERM, then SIGKILL) and their temp dirs
// removed when the tests are done; on Linux the processes also get
// Pdeathsig, so they die with the test binary even if it crashes.
//
// Servers bind 127.0.0.1 on random ports in 20000–55535 that were free when
// checked (a cluster node's bus port is port+10000), keep nothing on disk,
// and each run in a temp dir of their own. A server that fails to start
// because a port was taken in the meantime is retried on new ports.
//
// Environment:
//
//	KARAT_REDIS_URL          Single uses this server (redis://host:port) instead of starting one
//	KARAT_REDIS_CLUSTER_URL  ClusterServers uses this cluster (redis+cluster://h:p,h:p,...)
//	KARAT_SKIP_REDIS=1       a server that cannot be had skips the test (loudly) instead of failing it
//	KARAT_REQUIRE_REDIS=1    a server that cannot be had fails the test, even under KARAT_SKIP_REDIS=1 (CI)
//
// A server named by the environment is not owned (Owned is false): the
// package never stops it, and tests must not flush it.
//
// Without a redis-server binary the tests that need one FAIL, saying how to
// install it (apt-get install -y redis-server; on macOS brew install redis),
// so that a green go test ./... always means the Redis targets ran; set
// KARAT_SKIP_REDIS=1 to skip them instead, loudly.
// Built with the docker tag, Single instead starts a redis:7 container
// through testcontainers-go; the machines karat is developed and tested on
// have no Docker engine, so that path is compiled and vetted but never run.
//
// The package is stdlib only (testcontainers-go aside, under the docker tag)
// and speaks just enough RESP to check readiness and set servers up.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Main runs m and then stops every server this test binary started.
// Packages call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}

// Server is a single Redis node.
type Server struct {
	Addr  string // host:port
	URL   string // redis://host:port
	Owned bool   // started by this package, not named by KARAT_REDIS_URL
}

var (
	stopMu sync.Mutex
	stops  []func()
)

// onStop registers f to run when Main stops the servers.
func onStop(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stops = append(stops, f)
}

// stopAll runs the registered stops in parallel: each may wait seconds for
// a process to exit.
func stopAll() {
	stopMu.Lock()
	defer stopMu.Unlock()
	var wg sync.WaitGroup
	for _, f := range stops {
		wg.Go(f)
	}
	wg.Wait()
	stops = nil
}

// once memoises a start-up, error included, for the life of the binary.
type once[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (o *once[T]) get(t testing.TB, what string, start func() (T, error)) T {
	t.Helper()
	o.once.Do(func() { o.v, o.err = start() })
	if o.err != nil {
		unavailable(t, what, o.err)
	}
	return o.v
}

// InstallHint says how to get the redis-server the tests need.
const InstallHint = `karat's tests run against real Redis servers (7.0 or later).
Install one and run the tests again:
    Debian/Ubuntu:  apt-get install -y redis-server
    macOS:          brew install redis
or name servers you own with KARAT_REDIS_URL / KARAT_REDIS_CLUSTER_URL.
To skip every test that needs Redis instead, set KARAT_SKIP_REDIS=1.`

// unavailable fails the test, saying how to install Redis, or skips it
// loudly under KARAT_SKIP_REDIS=1 (unless KARAT_REQUIRE_REDIS=1).
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("KARAT_REQUIRE_REDIS") == "1" {
		t.Fatalf("redistest: no %s (KARAT_REQUIRE_REDIS=1): %v\n%s", what, err, InstallHint)
	}
	if os.Getenv("KARAT_SKIP_REDIS") == "1" {
		t.Skipf("SKIPPED (KARAT_SKIP_REDIS=1): redistest: no %s: %v", what, err)
	}
	t.Fatalf("redistest: no %s: %v\n%s", what, err, InstallHint)
}

var single once[*Server]

// Single returns the binary's single Redis node, starting it on first use,
// or the server KARAT_REDIS_URL names.
func Single(t testing.TB) *Server {
	t.Helper()
	return single.get(t, "redis-server", func() (*Server, error) {
		if u := os.Getenv("KARAT_REDIS_URL"); u != "" {
			return parseSingleURL(u)
		}
		if _, err := exec.LookPath("redis-server"); err != nil {
			s, derr := dockerSingle()
			if derr != nil {
				return nil, fmt.Errorf("%w (docker: %w)", err, derr)
			}
			return s, nil
		}
		p, err := startServer(plainSpec())
		if err != nil {
			return nil, err
		}
		return &Server{Addr: p.addr, URL: "redis://" + p.addr, Owned: true}, nil
	})
}

func parseSingleURL(u string) (*Server, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("KARAT_REDIS_URL %q: want redis://host:port", u)
	}
	addr := pu.Host
	if pu.Port() == "" {
		addr = net.JoinHostPort(pu.Hostname(), "6379")
	}
	return &Server{Addr: addr, URL: u}, nil
}

// dockerSingle starts a server without a redis-server binary; docker.go
// replaces it under the docker build tag.
var dockerSingle = func() (*Server, error) {
	return nil, errors.New("built without the docker tag")
}
