package redistest

import (
	"errors"
	"fmt"
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

// Persistence says what a Killable server keeps on disk.
type Persistence int

const (
	// NoPersistence keeps nothing: a restart starts empty (as every other
	// server of this package).
	NoPersistence Persistence = iota
	// AOFEverySec is appendonly yes with appendfsync everysec (Redis's
	// recommended setting, and compose.yaml's): the file is written before
	// a write's reply is sent, and fsynced once a second.
	AOFEverySec
	// AOFAlways fsyncs the append-only file before every reply.
	AOFAlways
)

// Killable is a redis-server of one test's own that the test may kill
// (SIGKILL, as a crash or the OOM killer would) or stop gently, and start
// again on the same port with the same data directory, so that what
// persistence keeps across a crash can be seen. It is killed, and its
// directory removed, when the test ends.
type Killable struct {
	Addr string // host:port, the same across restarts
	URL  string // redis://host:port
	Dir  string // the data directory, kept across restarts

	t     testing.TB
	port  int
	extra []string
	mu    sync.Mutex
	p     *proc // nil while down
}

// NewKillable starts a killable server keeping what persist says, with the
// extra redis-server options. Without a redis-server binary the test fails
// with install hints (or skips under KARAT_SKIP_REDIS=1).
func NewKillable(t testing.TB, persist Persistence, extra ...string) *Killable {
	t.Helper()
	return newKillable(t, persist, false, extra...)
}

// newKillable is NewKillable; with bus set, port+10000 (a cluster node's
// bus) must be free too.
func newKillable(t testing.TB, persist Persistence, bus bool, extra ...string) *Killable {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "killable redis-server", err)
	}
	dir, err := os.MkdirTemp("", "karat-killable-")
	if err != nil {
		t.Fatal(err)
	}
	switch persist {
	case AOFEverySec:
		extra = append([]string{"--appendonly", "yes", "--appendfsync", "everysec"}, extra...)
	case AOFAlways:
		extra = append([]string{"--appendonly", "yes", "--appendfsync", "always"}, extra...)
	default:
		extra = append([]string{"--appendonly", "no"}, extra...)
	}
	k := &Killable{Dir: dir, t: t, extra: extra}
	for range startTries {
		port, err := freePort(bus)
		if err != nil {
			t.Fatal(err)
		}
		k.port = port
		k.p, err = k.startOn()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) {
			os.RemoveAll(dir)
			unavailable(t, "killable redis-server", err)
		}
	}
	if k.p == nil {
		os.RemoveAll(dir)
		t.Fatalf("redistest: no port for a killable server after %d tries", startTries)
	}
	k.Addr = "127.0.0.1:" + strconv.Itoa(k.port)
	k.URL = "redis://" + k.Addr
	t.Cleanup(func() {
		k.Kill()
		os.RemoveAll(dir)
	})
	return k
}

// startOn runs the server on k.port in k.Dir and waits until it answers and
// has loaded its data.
func (k *Killable) startOn() (*proc, error) {
	logFile := filepath.Join(k.Dir, "redis.log")
	args := append([]string{"--port", strconv.Itoa(k.port)}, k.extra...)
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--dir", k.Dir,
		"--logfile", logFile, "--daemonize", "no")
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{addr: "127.0.0.1:" + strconv.Itoa(k.port), dir: k.Dir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	err := poll("redis-server at "+p.addr, 20*time.Second, func() error {
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
		if err := answersAs(p.addr, nil, cmd.Process.Pid); err != nil {
			return err
		}
		info, err := command(p.addr, "INFO", "persistence")
		if s, _ := info.(string); err == nil && !strings.Contains(s, "\r\nloading:0\r\n") {
			err = errors.New("still loading its data")
		}
		return err
	})
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return nil, err
	}
	return p, nil
}

// Kill sends SIGKILL and waits until the process has exited: nothing is
// flushed, exactly as in a crash of the server process. Killing a server
// that is down does nothing.
func (k *Killable) Kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p != nil {
		_ = k.p.cmd.Process.Signal(syscall.SIGKILL)
		<-k.p.exited
		k.p = nil
	}
}

// Stop stops the server gently (SIGTERM: Redis flushes and fsyncs its
// append-only file before it exits) and waits until it has exited.
func (k *Killable) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p != nil {
		_ = k.p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.p.exited:
		case <-time.After(20 * time.Second):
			_ = k.p.cmd.Process.Kill()
			<-k.p.exited
		}
		k.p = nil
	}
}

// WaitAOFWritten waits until the server has written its whole AOF buffer
// to the file (INFO persistence: aof_buffer_length:0, no write postponed),
// so that a SIGKILL from then on loses nothing the kernel holds.
func (k *Killable) WaitAOFWritten(timeout time.Duration) error {
	return poll("AOF written", timeout, func() error {
		r, err := command(k.Addr, "INFO", "persistence")
		s, _ := r.(string)
		if err == nil && (!strings.Contains(s, "\r\naof_buffer_length:0\r\n") || !strings.Contains(s, "\r\naof_enabled:1\r\n")) {
			err = errors.New("AOF buffer not yet written")
		}
		return err
	})
}

// Start starts the server again on the same port, with the same directory
// and options, and waits until it answers with its data loaded. The test
// fails if it cannot (someone took the port meanwhile).
func (k *Killable) Start() {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p != nil {
		return
	}
	p, err := k.startOn()
	if err != nil {
		k.t.Fatalf("redistest: restart %s: %v", k.Addr, err)
	}
	k.p = p
}

// Pid returns the server's process id, or 0 while it is down.
func (k *Killable) Pid() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p == nil {
		return 0
	}
	return k.p.cmd.Process.Pid
}

// Do sends one command to the server at addr on a connection of its own and
// returns the reply: a string, an int64, nil, a []any, or an error for an
// error reply. It is for tests that set servers up or look at them (CONFIG,
// INFO, CLUSTER FAILOVER, SENTINEL FAILOVER, DEBUG SLEEP...), never for the
// traffic under test.
func Do(addr string, args ...string) (any, error) {
	return command(addr, args...)
}
