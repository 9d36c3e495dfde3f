// Package karatproc builds the karat binary and runs `karat serve` as a
// child process for the tests that drive it over loopback
// (internal/loadtest, internal/securitytest). It is test support: every
// function takes the test and fails it on error.
package karatproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/karat once per test binary, statically as the
// Dockerfile does (CGO_ENABLED=0), and returns its path. The test must run
// in a package two directories below the module root.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "karat-load-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "karat")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/karat")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Server is a running `karat serve`.
type Server struct {
	Base string // http://host:port

	cmd    *exec.Cmd
	exited chan struct{}

	mu   sync.Mutex
	tail []string // the last lines of its stderr
	log  strings.Builder
}

// Log returns what the server wrote to stderr so far: every line of the
// first 8 MiB, then only the lines above level INFO.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Running reports whether the server process has not exited.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Pid returns the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Demo settings every Start passes.
const (
	DemoPassword  = "karatproc demo password"
	SessionSecret = "a karatproc secret of at least 32 bytes!!"
)

// Start runs `karat serve --addr 127.0.0.1:0 --log-format json --store
// storeURL --demo` with the demo password and session secret above, bcrypt
// cost 4 and 1 ms loads, plus args, waits until it listens, and stops it
// (SIGTERM) when the test ends. Its stderr is kept (Log).
func Start(t testing.TB, storeURL string, args ...string) *Server {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--store", storeURL,
		"--demo", "--demo-password", DemoPassword, "--session-secret", SessionSecret,
		"--bcrypt-cost", "4", "--data-delay", "1ms"}, args...)
	cmd := exec.Command(Binary(t), args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KARAT_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	s := &Server{cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			// Everything up to 8 MiB, then warnings and errors only.
			if s.log.Len() < 8<<20 || !strings.Contains(line, `"level":"INFO"`) {
				s.log.WriteString(line)
				s.log.WriteByte('\n')
			}
			s.tail = append(s.tail, line)
			if len(s.tail) > 40 {
				s.tail = s.tail[1:]
			}
			s.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				if a, ok := m["addr"].(string); ok {
					addr <- a
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("karat's last log lines:\n%s", s.lastLines())
		}
	})
	select {
	case a := <-addr:
		s.Base = "http://" + a
	case <-s.exited:
		t.Fatalf("karat exited before listening:\n%s", s.lastLines())
	case <-time.After(60 * time.Second):
		t.Fatalf("karat did not listen within 60s:\n%s", s.lastLines())
	}
	return s
}

func (s *Server) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// RSSKB returns the server process's resident set size in KiB.
func (s *Server) RSSKB(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Reply is an HTTP response with its body read.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
}

// Call sends one request with the JSON of body (if not nil), as the client
// at ip (in X-Forwarded-For, if not empty), with the bearer token (if not
// empty).
func Call(hc *http.Client, base, method, path, ip, token string, body any) (*Reply, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &Reply{Status: res.StatusCode, Header: res.Header, Body: b, Took: time.Since(start)}, nil
}
