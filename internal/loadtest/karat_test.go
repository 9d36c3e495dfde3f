package loadtest

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

	"github.com/karat-go/karat/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// karatBinary builds cmd/karat once per test binary, statically as the
// Dockerfile does (CGO_ENABLED=0).
func karatBinary(t *testing.T) string {
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

// server is a running `karat serve`.
type server struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{}

	mu   sync.Mutex
	tail []string // the last lines of its stderr
}

const (
	demoPassword  = "load test password"
	sessionSecret = "a load-test secret of at least 32 bytes!!"
)

// startKarat runs karat serve on storeURL with the given rate-limit
// policies, trusting 127.0.0.1 as a proxy (so that each virtual user has
// an address of its own in X-Forwarded-For), and stops it at the end.
func startKarat(t *testing.T, storeURL, rateLimits string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--store", storeURL,
		"--demo", "--demo-password", demoPassword, "--session-secret", sessionSecret,
		"--trusted-proxies", "127.0.0.1/32", "--bcrypt-cost", "4", "--data-delay", "1ms",
		"--rate-limits", rateLimits}, extra...)
	cmd := exec.Command(karatBinary(t), args...)
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
	s := &server{cmd: cmd, exited: make(chan struct{})}
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
		s.base = "http://" + a
	case <-s.exited:
		t.Fatalf("karat exited before listening:\n%s", s.lastLines())
	case <-time.After(60 * time.Second):
		t.Fatalf("karat did not listen within 60s:\n%s", s.lastLines())
	}
	return s
}

func (s *server) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// rssKB returns the server process's resident set size in KiB.
func (s *server) rssKB(t *testing.T) int64 {
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

// reply is an HTTP response with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// call sends one request as the client at ip (X-Forwarded-For), with the
// bearer token if any.
func call(hc *http.Client, base, method, path, ip, token string, body any) (*reply, error) {
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
	req.Header.Set("X-Forwarded-For", ip)
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
	return &reply{status: res.StatusCode, header: res.Header, body: b, took: time.Since(start)}, nil
}
