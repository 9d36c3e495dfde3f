// Package redistest starts real redis-server processes on loopback for
// karat's tests: a single node, a 3-master cluster with one replica each, a
// Sentinel-watched primary, and a TLS server with a certificate made by the
// test. Each kind starts once per test binary, on first use, and Main stops
// them when the binary's tests are done; Pdeathsig makes them die with the
// binary even if it crashes.
//
// Servers bind 127.0.0.1 on random free ports in 20000–55535 (a cluster
// node's bus port is port+10000), keep nothing on disk, and live in a temp
// dir each. A start that fails because a port was taken meanwhile is retried
// on new ports.
//
// Environment:
//
//	KARAT_REDIS_URL          use this server for Single instead of starting one
//	KARAT_REDIS_CLUSTER_URL  use this cluster (redis+cluster://h:p,...) for ClusterServers
//	KARAT_REQUIRE_REDIS=1    a server that cannot be had fails the test instead of skipping it
//
// Tests never flush a server they did not start. The package is stdlib only
// and speaks just enough RESP to check readiness. With the docker build tag,
// Single falls back to a redis:7 container through testcontainers-go when no
// redis-server binary is installed; the machines karat is developed on have
// no Docker engine, so that path is compiled and vetted but not exercised.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	Owned bool   // started by this package (false when KARAT_REDIS_URL names it)
}

// Cluster is a Redis Cluster.
type Cluster struct {
	Addrs   []string // every node
	Masters []string // the masters
	URL     string   // redis+cluster://master1,master2,master3
	Owned   bool
}

// Sentinel is a primary, a replica and a sentinel watching them.
type Sentinel struct {
	Addrs      []string // the sentinels
	MasterName string
	MasterAddr string
	URL        string // redis+sentinel://sentinel/mastername
}

// process is a redis-server this package started.
type process struct {
	cmd    *exec.Cmd
	dir    string
	exited chan error // receives cmd.Wait's result, once
}

var (
	procMu   sync.Mutex
	procs    []*process
	tempDirs []string // removed by stopAll, besides the processes' own
	// containers are stop functions of docker-tag containers.
	containers []func()
)

// tempDir makes a directory that stopAll removes.
func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "karat-redistest-")
	if err == nil {
		procMu.Lock()
		tempDirs = append(tempDirs, dir)
		procMu.Unlock()
	}
	return dir, err
}

func stopAll() {
	procMu.Lock()
	defer procMu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		_ = os.RemoveAll(p.dir)
	}
	procs = nil
	for _, stop := range containers {
		stop()
	}
	containers = nil
	for _, d := range tempDirs {
		_ = os.RemoveAll(d)
	}
	tempDirs = nil
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

// unavailable skips the test loudly, or fails it under KARAT_REQUIRE_REDIS=1.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("KARAT_REQUIRE_REDIS") == "1" {
		t.Fatalf("redistest: %s unavailable and KARAT_REQUIRE_REDIS=1: %v", what, err)
	}
	t.Skipf("SKIPPED FOR LACK OF A SERVER: redistest: %s unavailable: %v (install redis-server, or set KARAT_REQUIRE_REDIS=1 to make this a failure)", what, err)
}

var (
	single   once[*Server]
	cluster  once[*Cluster]
	sentinel once[*Sentinel]
	tlsSrv   once[*TLSServer]
)

// Single returns the binary's single Redis node, starting it on first use.
func Single(t testing.TB) *Server {
	t.Helper()
	return single.get(t, "single redis-server", func() (*Server, error) {
		if u := os.Getenv("KARAT_REDIS_URL"); u != "" {
			pu, err := url.Parse(u)
			if err != nil || pu.Host == "" {
				return nil, fmt.Errorf("KARAT_REDIS_URL %q: not a redis:// URL", u)
			}
			return &Server{Addr: pu.Host, URL: u}, nil
		}
		if _, err := exec.LookPath("redis-server"); err != nil {
			if s, derr := dockerSingle(); derr == nil {
				return s, nil
			}
			return nil, err
		}
		addr, err := startRetry(func(port int) []string { return nil })
		if err != nil {
			return nil, err
		}
		return &Server{Addr: addr, URL: "redis://" + addr, Owned: true}, nil
	})
}

// dockerSingle is replaced under the docker build tag.
var dockerSingle = func() (*Server, error) { return nil, errors.New("built without the docker tag") }

// freePort returns a port in 20000–55535 that, with port+10000 when bus is
// set, nobody listens on right now.
func freePort(bus bool) (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(35536)
		if !portFree(p) || (bus && !portFree(p+10000)) {
			continue
		}
		return p, nil
	}
	return 0, errors.New("no free port found")
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// startRetry starts a server with the base options plus extra(port), on a
// fresh port, retrying on new ports when it fails to come up.
func startRetry(extra func(port int) []string) (string, error) {
	return startRetryBus(false, extra)
}

func startRetryBus(bus bool, extra func(port int) []string) (string, error) {
	var last error
	for range 5 {
		port, err := freePort(bus)
		if err != nil {
			return "", err
		}
		args := append([]string{"--port", strconv.Itoa(port)}, extra(port)...)
		addr, err := start(args, "127.0.0.1:"+strconv.Itoa(port), false)
		if err == nil {
			return addr, nil
		}
		last = err
	}
	return "", fmt.Errorf("redis-server did not start after 5 tries: %w", last)
}

// start runs redis-server with args (and the options every server gets),
// then waits until addr answers PING (over TLS when useTLS).
func start(args []string, addr string, useTLS bool) (string, error) {
	dir, err := os.MkdirTemp("", "karat-redistest-")
	if err != nil {
		return "", err
	}
	base := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no", "--protected-mode", "no"}
	if len(args) > 0 && strings.HasSuffix(args[0], ".conf") {
		// redis-server takes its configuration file as the first argument.
		base = append([]string{args[0]}, base...)
		args = args[1:]
	}
	cmd := exec.Command("redis-server", append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			os.RemoveAll(dir)
			return "", fmt.Errorf("redis-server exited (%v): %s", err, lastLines(string(log), 3))
		default:
		}
		if err := pingAddr(addr, useTLS); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			os.RemoveAll(dir)
			return "", fmt.Errorf("redis-server at %s not ready in 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	procMu.Lock()
	procs = append(procs, &process{cmd: cmd, dir: dir, exited: exited})
	procMu.Unlock()
	return addr, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// pingAddr checks that addr answers PING.
func pingAddr(addr string, useTLS bool) error {
	c, err := dialRESP(addr, useTLS)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.do("PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %v", r)
	}
	return nil
}

// respConn is a minimal RESP2 client: enough for readiness and set-up.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRESP(addr string, useTLS bool) (*respConn, error) {
	var c net.Conn
	var err error
	if useTLS {
		c, err = dialTLS(addr)
	} else {
		c, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return &respConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// do sends a command and reads one reply: a string, an int64, nil, an
// error, or a []any.
func (c *respConn) do(args ...string) (any, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(sb.String())); err != nil {
		return nil, err
	}
	return c.read()
}

// respError is an error reply.
type respError string

// Error returns the reply text.
func (e respError) Error() string { return string(e) }

func (c *respConn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, respError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// command runs one command against addr.
func command(addr string, args ...string) (any, error) {
	c, err := dialRESP(addr, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do(args...)
}

// poll calls check until it returns nil or the deadline passes.
func poll(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %v: %w", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PauseClients makes the server at addr hold every client command for d
// (CLIENT PAUSE ... ALL): a stalled server, for targets that a proxy cannot
// stand in front of (cluster clients follow the addresses the cluster
// announces). The pause ends by itself.
func PauseClients(addr string, d time.Duration) error {
	_, err := command(addr, "CLIENT", "PAUSE", strconv.FormatInt(d.Milliseconds(), 10), "ALL")
	return err
}
