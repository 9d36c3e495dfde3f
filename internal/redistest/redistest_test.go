package redistest

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestSingle(t *testing.T) {
	s := Single(t)
	if err := pingAddr(s.Addr, false); err != nil {
		t.Fatal(err)
	}
	if again := Single(t); again != s {
		t.Fatal("Single starts one server per binary")
	}
}

func TestCluster(t *testing.T) {
	c := ClusterServers(t)
	if len(c.Masters) != 3 {
		t.Fatalf("masters: %v", c.Masters)
	}
	for _, m := range c.Masters {
		info, err := command(m, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info.(string), "cluster_state:ok") {
			t.Fatalf("%s: %v %v", m, info, err)
		}
	}
	if !strings.HasPrefix(c.URL, "redis+cluster://") {
		t.Fatal(c.URL)
	}
}

func TestSentinel(t *testing.T) {
	s := SentinelServers(t)
	r, err := command(s.Addrs[0], "SENTINEL", "get-master-addr-by-name", s.MasterName)
	if err != nil {
		t.Fatal(err)
	}
	a := r.([]any)
	if got := a[0].(string) + ":" + a[1].(string); got != s.MasterAddr {
		t.Fatalf("sentinel says master is %s, want %s", got, s.MasterAddr)
	}
}

func TestTLS(t *testing.T) {
	s := TLSServers(t)
	c, err := tls.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := pingAddr(s.Addr, true); err != nil {
		t.Fatal(err)
	}
	if err := pingAddr(s.Addr, false); err == nil {
		t.Fatal("a plain-text PING to the TLS port should fail")
	}
}

func TestProxyStall(t *testing.T) {
	s := Single(t)
	p := NewProxy(t, s.Addr)
	c, err := dialRESP(p.Addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.do("PING"); err != nil || r != "PONG" {
		t.Fatalf("through the proxy: %v %v", r, err)
	}
	p.Stall()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.do("PING")
	var ne net.Error
	if err == nil || !asNetTimeout(err, &ne) {
		t.Fatalf("PING through a stalled proxy: %v, want a timeout", err)
	}
	p.Resume()
	// The held-back PING is forwarded on Resume; its answer and the next one arrive.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if r, err := c.read(); err != nil || r != "PONG" {
		t.Fatalf("held-back PING after Resume: %v %v", r, err)
	}
	if r, err := c.do("PING"); err != nil || r != "PONG" {
		t.Fatalf("after Resume: %v %v", r, err)
	}
}

func asNetTimeout(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok && e.Timeout()
}
