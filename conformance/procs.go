package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// workerPkg is the command the cross-process cases build and start.
const workerPkg = "github.com/karat-go/karat/conformance/worker"

// RunWorkers starts n worker processes (the conformance/worker command, built
// once per test binary with the go command) over the harness's backend, each
// with its own store opened from h's URL, releases them at once when every
// one is ready, and returns each one's result line. It skips the test, saying
// why, when h is not a URLer (the memory driver cannot be shared across
// processes) or when no go command is found to build the worker.
func RunWorkers(t *testing.T, h Harness, n int, role string, args ...string) []string {
	t.Helper()
	u, ok := h.(URLer)
	if !ok {
		t.Skip("harness has no store URL (URLer): its store cannot be shared with other OS processes")
	}
	bin := workerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		out    *bufio.Reader
		stderr strings.Builder
	}
	procs := make([]*proc, n)
	defer func() {
		for _, p := range procs {
			if p != nil && p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
	}()
	for i := range procs {
		p := &proc{}
		p.cmd = exec.CommandContext(ctx, bin, append([]string{"-store", u.StoreURL(), "-role", role, "--"}, args...)...)
		p.cmd.Stderr = &p.stderr
		stdin, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin, p.out = stdin, bufio.NewReader(stdout)
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting worker %d: %v", i, err)
		}
		procs[i] = p
	}
	for i, p := range procs {
		line, err := p.out.ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			_ = p.cmd.Wait()
			t.Fatalf("worker %d did not get ready (%q, %v): %s", i, line, err, p.stderr.String())
		}
	}
	for _, p := range procs {
		_, _ = io.WriteString(p.stdin, "go\n")
		_ = p.stdin.Close()
	}
	results := make([]string, n)
	for i, p := range procs {
		rest, _ := io.ReadAll(p.out)
		err := p.cmd.Wait()
		if err != nil {
			t.Fatalf("worker %d (%s): %v: %s", i, role, err, p.stderr.String())
		}
		line := strings.TrimSpace(string(rest))
		out, ok := strings.CutPrefix(line, "result ")
		if !ok {
			t.Fatalf("worker %d (%s) printed %q, want a result line", i, role, line)
		}
		results[i] = out
	}
	return results
}

var worker struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// workerBinary builds the worker once per test binary, in a directory of
// its own that is left to the OS's temp cleaning (it outlives any one test).
func workerBinary(t *testing.T) string {
	t.Helper()
	worker.once.Do(func() {
		goCmd, err := exec.LookPath("go") // go test puts its GOROOT/bin first on PATH
		if err != nil {
			goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
			if _, statErr := os.Stat(goCmd); os.Getenv("GOROOT") == "" || statErr != nil {
				worker.err = fmt.Errorf("%w: no go command to build the worker (%v)", errors.ErrUnsupported, err)
				return
			}
		}
		worker.dir, err = os.MkdirTemp("", "karat-conformance-worker-")
		if err != nil {
			worker.err = err
			return
		}
		worker.path = filepath.Join(worker.dir, "worker")
		cmd := exec.Command(goCmd, "build", "-o", worker.path, workerPkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			worker.err = fmt.Errorf("building %s: %v\n%s", workerPkg, err, out)
		}
	})
	if errors.Is(worker.err, errors.ErrUnsupported) {
		t.Skip(worker.err.Error())
	}
	if worker.err != nil {
		t.Fatal(worker.err)
	}
	return worker.path
}
