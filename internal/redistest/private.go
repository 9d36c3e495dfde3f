package redistest

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Private is a redis-server of one test's own, which the test may stop and
// start again on the same port (to see how a client behaves while the server
// refuses connections, and that it recovers) or start with options of its
// own (a password, say). It is stopped when the test ends.
type Private struct {
	Addr string // host:port, the same across Stop and Start
	URL  string // redis://host:port

	t     testing.TB
	extra []string
	mu    sync.Mutex
	p     *proc // nil while stopped
}

// NewPrivate starts a private server with the extra redis-server options
// (for example "--requirepass", "secret"). Without a redis-server binary the
// test is skipped (or fails under KARAT_REQUIRE_REDIS=1).
func NewPrivate(t testing.TB, extra ...string) *Private {
	t.Helper()
	p, err := startServer(plainSpec(extra...))
	if err != nil {
		unavailable(t, "private redis-server", err)
	}
	s := &Private{Addr: p.addr, URL: "redis://" + p.addr, t: t, extra: extra, p: p}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server and waits until it has exited, so that connections
// to Addr are refused. Stopping a stopped server does nothing.
func (s *Private) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.stop()
		s.p = nil
	}
}

// Start starts the server again on Addr and waits until it answers; the
// test fails if it cannot (someone took the port meanwhile). The data is
// gone: the server keeps nothing on disk.
func (s *Private) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return
	}
	_, portText, _ := strings.Cut(s.Addr, ":")
	port, _ := strconv.Atoi(portText)
	p, err := startOn(plainSpec(s.extra...), port)
	if errors.Is(err, errPortTaken) {
		s.t.Fatalf("redistest: port of %s taken while the server was stopped: %v", s.Addr, err)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart %s: %v", s.Addr, err)
	}
	s.p = p
}
