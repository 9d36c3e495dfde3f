package redistest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spec says how to run one redis-server.
type spec struct {
	bus bool        // port+10000 (the cluster bus) must be free too
	tls *tls.Config // readiness is checked over TLS with this config; nil for plain
	// args returns the arguments for a server on port whose temp dir is
	// dir, where it may write files. A config file, if any, comes first, as
	// redis-server wants it.
	args func(dir string, port int) ([]string, error)
}

// plainSpec is a plain server with extra options.
func plainSpec(extra ...string) spec {
	return spec{args: func(_ string, port int) ([]string, error) {
		return append([]string{"--port", strconv.Itoa(port)}, extra...), nil
	}}
}

// proc is a running redis-server this package started.
type proc struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returns
}

const startTries = 5

// startServer starts a server as s says and waits until it answers.
// It retries on new ports when a port it picked was taken meanwhile.
func startServer(s spec) (*proc, error) {
	var err error
	for range startTries {
		var port int
		if port, err = freePort(s.bus); err != nil {
			return nil, err
		}
		var p *proc
		p, err = startOn(s, port)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("redis-server: %d tries: %w", startTries, err)
}

var errPortTaken = errors.New("port taken")

func startOn(s spec, port int) (*proc, error) {
	dir, err := os.MkdirTemp("", "karat-redistest-")
	if err != nil {
		return nil, err
	}
	args, err := s.args(dir, port)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile := filepath.Join(dir, "redis.log")
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logFile, "--daemonize", "no")
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &proc{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	err = poll("redis-server at "+p.addr, 10*time.Second, func() error {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(logFile)
			err := fmt.Errorf("redis-server exited (%v): %s", cmd.ProcessState, lastLines(string(log), 3))
			if strings.Contains(string(log), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return permanent{err}
		default:
		}
		return answersAs(p.addr, s.tls, cmd.Process.Pid)
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	onStop(p.stop)
	return p, nil
}

// stop ends the process, gently first, and removes its dir.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	os.RemoveAll(p.dir)
}

// freePort returns a port that (with port+10000 when bus is set) nobody
// listened on a moment ago, below the kernel's ephemeral range when it
// leaves room: the local end of an outgoing connection (thousands in a test
// run) takes its port from that range, and once took the port of a server
// killed for a restart test, which then could not listen on it again.
func freePort(bus bool) (int, error) {
	lo, n := portRange(bus)
	for range 100 {
		p := lo + rand.IntN(n)
		if portFree(p) && (!bus || portFree(p+10000)) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port found in %d-%d", lo, lo+n-1)
}

// portRange returns the first port and how many to choose from: 10000 up
// to the ephemeral range (Linux's ip_local_port_range, 32768 by default),
// less 10000 for a cluster bus; 20000-55535 where that leaves too few.
func portRange(bus bool) (lo, n int) {
	eph := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				eph = v
			}
		}
	}
	top := eph - 1
	if bus {
		top -= 10000
	}
	if top-10000 < 2000 {
		return 20000, 35536
	}
	return 10000, top - 10000 + 1
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// permanent marks an error that poll must not wait out.
type permanent struct{ error }

// Unwrap returns the error that poll gave up on.
func (p permanent) Unwrap() error { return p.error }

// poll calls check until it returns nil, a permanent error, or timeout
// passes.
func poll(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if errors.As(err, new(permanent)) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %v: %w", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
