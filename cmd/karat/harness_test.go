package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/redistest"
)

func TestMain(m *testing.M) {
	redistest.Main(m)
}

// The binary under test is built once per test binary, by the Dockerfile's
// own `go build` line run verbatim (only the output path changes), so that
// what the tests exercise is what the image ships.
var (
	buildOnce sync.Once
	binPath   string
	binErr    error
	binDir    string
)

// dockerBuildLine returns the Dockerfile's `RUN ... go build ...` command.
func dockerBuildLine(t *testing.T) string {
	t.Helper()
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatalf("reading the Dockerfile: %v", err)
	}
	re := regexp.MustCompile(`(?m)^RUN (.*\bgo build\b.*)$`)
	m := re.FindAllStringSubmatch(string(df), -1)
	if len(m) != 1 {
		t.Fatalf("the Dockerfile has %d `RUN ... go build` lines, want 1", len(m))
	}
	return m[0][1]
}

func karatBinary(t *testing.T) string {
	t.Helper()
	line := dockerBuildLine(t)
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "karat-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "karat")
		if !strings.Contains(line, "-o /out/karat ") {
			binErr = fmt.Errorf("the Dockerfile's build line %q does not write -o /out/karat", line)
			return
		}
		cmdline := strings.Replace(line, "-o /out/karat ", "-o "+binPath+" ", 1)
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%s: %v\n%s", cmdline, err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building karat: %v", binErr)
	}
	return binPath
}

// logBuf collects a process's standard error, safely for concurrent reads.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logLines returns the JSON log lines whose msg is msg.
func (l *logBuf) lines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && (msg == "" || m["msg"] == msg) {
			out = append(out, m)
		}
	}
	return out
}

// server is a running `karat serve` process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string // http://host:port
	stderr *logBuf
	stdout *logBuf
	exited chan struct{}
	err    error // from Wait, once exited is closed

	mu     sync.Mutex
	tokens []string // every token a login handed out
}

const testPassword = "correct horse battery staple"

// startServer runs `karat serve --addr 127.0.0.1:0 --log-format json` with
// extra args and env, waits until it listens, and stops it (SIGTERM) when
// the test ends.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	bin := karatBinary(t)
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Env = append(cleanEnv(), env...)
	s := &server{t: t, cmd: cmd, stderr: &logBuf{}, stdout: &logBuf{}, exited: make(chan struct{})}
	cmd.Stderr, cmd.Stdout = s.stderr, s.stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting karat: %v", err)
	}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("karat's stderr:\n%s", tail(s.stderr.String(), 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := s.stderr.lines("listening"); len(l) > 0 {
			s.base = "http://" + l[0]["addr"].(string)
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("karat exited before listening (%v):\n%s", s.err, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("karat did not listen within 30s:\n%s", s.stderr.String())
		}
	}
}

// cleanEnv is the test's environment without KARAT_ variables, so that the
// developer's own settings cannot change what a test sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KARAT_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits for the exit; it returns the exit code.
func (s *server) stop() int {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.t.Errorf("karat did not exit within 20s of SIGTERM")
		}
	}
	return s.cmd.ProcessState.ExitCode()
}

// client is an HTTP client with its own cookie jar (one "device").
type client struct {
	t    *testing.T
	srv  *server
	http *http.Client
	// bearer, when set, is sent as Authorization: Bearer.
	bearer string
	// header is added to every request.
	header http.Header
	// userAgent names the device.
	userAgent string
}

func (s *server) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: s.t, srv: s, http: &http.Client{Jar: jar, Timeout: 20 * time.Second}, header: http.Header{}}
}

// resp is a response with its body read.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r *resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %q", r.status, err, r.body)
	}
	return m
}

func (c *client) do(method, path string, body any) *resp {
	c.t.Helper()
	r, err := c.try(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) try(method, path string, body any) (*resp, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/octet-stream"
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, c.srv.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// wantStatus fails the test unless r has the status; problem responses must
// be application/problem+json with that status in their body.
func wantStatus(t *testing.T, r *resp, status int, what string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
		}
		var p struct {
			Type   string `json:"type"`
			Title  string `json:"title"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil || p.Status != status || p.Title == "" || p.Type == "" {
			t.Fatalf("%s: not an RFC 9457 problem with status %d: %s", what, status, r.body)
		}
	}
}

// redisProc is a redis-server this test owns, so that it can kill it and
// start it again on the same port.
type redisProc struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("KARAT_REQUIRE_REDIS") == "1" {
			t.Fatalf("no redis-server (KARAT_REQUIRE_REDIS=1): %v", err)
		}
		t.Skipf("SKIPPED: no redis-server binary: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &redisProc{t: t, port: port, dir: t.TempDir()}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *redisProc) url() string { return "redis://127.0.0.1:" + strconv.Itoa(p.port) }

func (p *redisProc) start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", p.dir, "--daemonize", "no", "--loglevel", "warning")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("redis-server: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), time.Second)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("redis-server on %d did not answer within 10s", p.port)
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness, not synchronising on time
	}
}

func (p *redisProc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// eventually polls cond every 25ms until it is true or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(25 * time.Millisecond) // polling up to a deadline
	}
}

// runCmd runs the binary with env and args and returns its exit code.
func runCmd(t *testing.T, bin string, env []string, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return cmd.ProcessState.ExitCode()
}
