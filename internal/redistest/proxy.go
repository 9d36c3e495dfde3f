package redistest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback TCP proxy whose forwarding can be stopped without
// closing any connection: a silent network partition, which clients notice
// only by timing out.
type Proxy struct {
	Addr string // where clients connect

	target string
	ln     net.Listener
	done   chan struct{} // closed when the proxy closes
	wg     sync.WaitGroup

	mu      sync.Mutex
	stalled chan struct{}         // non-nil while stalled; Resume closes it
	conns   map[net.Conn]struct{} // both ends of every forwarded connection
	closed  bool
}

// NewProxy starts a proxy to target, closed (with every connection through
// it) at t's cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln,
		done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

// Stall stops forwarding bytes, and closes, in both directions, on every
// connection, present or future. Bytes a connection already had in flight
// when Stall was called may still get through.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Resume forwards again everything held back since Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.handle(c) })
	}
}

func (p *Proxy) handle(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, u) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(u, c) })
	wg.Go(func() { p.pump(c, u) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// track records the ends of a new connection, or closes them if the proxy
// is closed already.
func (p *Proxy) track(ends ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range ends {
		if p.closed {
			c.Close()
		} else {
			p.conns[c] = struct{}{}
		}
	}
	return !p.closed
}

// pump copies src to dst, holding every read, and the end of src, while
// the proxy is stalled; when either side ends, so does the connection.
func (p *Proxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.flowing() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// flowing waits while the proxy is stalled, and reports false if it closes
// meanwhile.
func (p *Proxy) flowing() bool {
	p.mu.Lock()
	stalled := p.stalled
	p.mu.Unlock()
	if stalled == nil {
		return true
	}
	select {
	case <-stalled:
		return true
	case <-p.done:
		return false
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	close(p.done)
	p.ln.Close()
	p.wg.Wait()
}

// PauseClients makes the server at addr hold every client's commands for d
// (CLIENT PAUSE ALL) without closing any connection. It stalls clients that
// a Proxy cannot, such as cluster clients, which reach nodes by the
// addresses the cluster announces.
func PauseClients(addr string, d time.Duration) error {
	r, err := command(addr, "CLIENT", "PAUSE", strconv.FormatInt(max(1, d.Milliseconds()), 10), "ALL")
	if err == nil && r != "OK" {
		err = fmt.Errorf("CLIENT PAUSE answered %v", r)
	}
	return err
}
