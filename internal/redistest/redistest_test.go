package redistest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestSingle(t *testing.T) {
	s := Single(t)
	if err := pingAddr(s.Addr, nil); err != nil {
		t.Fatal(err)
	}
	if s.URL != "redis://"+s.Addr && s.Owned {
		t.Fatalf("URL %q for %s", s.URL, s.Addr)
	}
	if again := Single(t); again != s {
		t.Fatal("Single started a second server")
	}
}

func TestParseSingleURL(t *testing.T) {
	for u, want := range map[string]string{
		"redis://10.0.0.1:7000":    "10.0.0.1:7000",
		"redis://10.0.0.1":         "10.0.0.1:6379",
		"redis://u:p@[::1]:7000/3": "[::1]:7000",
	} {
		s, err := parseSingleURL(u)
		if err != nil || s.Addr != want || s.Owned {
			t.Errorf("%s: %+v %v, want Addr %s", u, s, err, want)
		}
	}
	if _, err := parseSingleURL("127.0.0.1:6379"); err == nil {
		t.Error("a bare host:port should be refused")
	}
}

func TestParseClusterURL(t *testing.T) {
	c, err := parseClusterURL("redis+cluster://10.0.0.1:7000,10.0.0.2:7001?protocol=3")
	if err != nil || strings.Join(c.Masters, " ") != "10.0.0.1:7000 10.0.0.2:7001" || c.Owned {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := parseClusterURL("redis://10.0.0.1:7000"); err == nil {
		t.Error("a redis:// URL should be refused")
	}
}

// TestPortTaken checks that a start refused for its port is recognised, so
// startServer retries it on another.
func TestPortTaken(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = startOn(plainSpec(), l.Addr().(*net.TCPAddr).Port)
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: %v, want errPortTaken", err)
	}
}

// TestCluster writes to each master a key of a slot it serves, directly,
// which works only if the cluster formed as announced.
func TestCluster(t *testing.T) {
	c := ClusterServers(t)
	if len(c.Masters) != 3 || c.URL != "redis+cluster://"+strings.Join(c.Masters, ",") {
		t.Fatalf("masters %v, URL %s", c.Masters, c.URL)
	}
	for _, a := range c.Addrs {
		info, err := command(a, "CLUSTER", "INFO")
		if s, _ := info.(string); err != nil || !strings.Contains(s, "cluster_state:ok") {
			t.Fatalf("%s: CLUSTER INFO: %v %v", a, info, err)
		}
	}
	slots, err := command(c.Masters[0], "CLUSTER", "SLOTS")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[int64]string{} // first slot of each range → master serving it
	ranges := map[string][][2]int64{}
	for _, r := range slots.([]any) {
		r := r.([]any)
		node := r[2].([]any)
		addr := node[0].(string) + ":" + strconv.FormatInt(node[1].(int64), 10)
		ranges[addr] = append(ranges[addr], [2]int64{r[0].(int64), r[1].(int64)})
		owner[r[0].(int64)] = addr
	}
	for _, m := range c.Masters {
		key := keyServedBy(t, m, ranges[m])
		if r, err := command(m, "SET", key, "v"); err != nil || r != "OK" {
			t.Fatalf("SET %s on %s: %v %v", key, m, r, err)
		}
		if _, err := command(m, "DEL", key); err != nil {
			t.Fatal(err)
		}
	}
}

// keyServedBy finds a key whose slot is in ranges.
func keyServedBy(t *testing.T, addr string, ranges [][2]int64) string {
	t.Helper()
	for i := range 1000 {
		key := "karat-redistest-" + strconv.Itoa(i)
		r, err := command(addr, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			t.Fatal(err)
		}
		for _, rg := range ranges {
			if s := r.(int64); rg[0] <= s && s <= rg[1] {
				return key
			}
		}
	}
	t.Fatalf("no key found for %s's slots %v", addr, ranges)
	return ""
}

func TestSentinel(t *testing.T) {
	s := SentinelServers(t)
	r, err := command(s.Addrs[0], "SENTINEL", "get-master-addr-by-name", s.MasterName)
	if err != nil {
		t.Fatal(err)
	}
	a := r.([]any)
	if got := a[0].(string) + ":" + a[1].(string); got != s.MasterAddr {
		t.Fatalf("the sentinel says the master is %s, want %s", got, s.MasterAddr)
	}
	if want := "redis+sentinel://" + s.Addrs[0] + "/" + s.MasterName; s.URL != want {
		t.Fatalf("URL %s, want %s", s.URL, want)
	}
}

func TestTLS(t *testing.T) {
	s := TLSServers(t)
	c, err := tls.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("PING over TLS: %q %v", buf[:n], err)
	}
	if err := pingAddr(s.Addr, nil); err == nil {
		t.Fatal("a plain PING to the TLS port worked")
	}
	if _, err := os.Stat(s.CAFile); err != nil || !strings.Contains(s.URL, "?tls_ca=%2F") {
		t.Fatalf("CAFile %s (%v), URL %s", s.CAFile, err, s.URL)
	}
}

func TestProxy(t *testing.T) {
	p := NewProxy(t, Single(t).Addr)
	c, err := dialRESP(p.Addr, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.do("PING"); err != nil || r != "PONG" {
		t.Fatalf("PING through the proxy: %v %v", r, err)
	}

	p.Stall()
	expectTimeout(t, c, "PING through a stalled proxy")
	late, err := dialRESP(p.Addr, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("a stalled proxy must still accept: %v", err)
	}
	defer late.Close()
	expectTimeout(t, late, "PING on a connection made while stalled")

	p.Resume()
	for _, c := range []*respConn{c, late} {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if r, err := c.read(); err != nil || r != "PONG" { // the PING held back
			t.Fatalf("held-back PING after Resume: %v %v", r, err)
		}
		if r, err := c.do("PING"); err != nil || r != "PONG" {
			t.Fatalf("PING after Resume: %v %v", r, err)
		}
	}
}

func TestPauseClients(t *testing.T) {
	s := Single(t)
	c, err := dialRESP(s.Addr, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := PauseClients(s.Addr, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	expectTimeout(t, c, "PING to a paused server")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if r, err := c.read(); err != nil || r != "PONG" {
		t.Fatalf("PING once the pause ends: %v %v", r, err)
	}
}

func expectTimeout(t *testing.T, c *respConn, what string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	r, err := c.do("PING")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: %v %v, want a timeout", what, r, err)
	}
}

// pingAddr checks that addr answers PING.
func pingAddr(addr string, cfg *tls.Config) error {
	c, err := dialRESP(addr, cfg, 5*time.Second)
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

// TestMissingRedisServer: without redis-server on PATH, a test that needs
// one fails and says how to install it; KARAT_SKIP_REDIS=1 skips it
// instead, and KARAT_REQUIRE_REDIS=1 makes it fail whatever else is set. The
// cases run this test binary again, with an empty PATH.
func TestMissingRedisServer(t *testing.T) {
	if os.Getenv("KARAT_REDISTEST_CHILD") == "1" {
		Single(t)
		return
	}
	for _, c := range []struct {
		name     string
		env      []string
		wantFail bool
		want     []string
	}{
		{"default", nil, true, []string{"apt-get install -y redis-server", "brew install redis", "KARAT_SKIP_REDIS=1"}},
		{"skip", []string{"KARAT_SKIP_REDIS=1"}, false, []string{"SKIPPED (KARAT_SKIP_REDIS=1)"}},
		{"require", []string{"KARAT_SKIP_REDIS=1", "KARAT_REQUIRE_REDIS=1"}, true, []string{"KARAT_REQUIRE_REDIS=1", "apt-get install -y redis-server"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingRedisServer$", "-test.v", "-test.count=1")
			env := []string{"KARAT_REDISTEST_CHILD=1", "PATH=" + t.TempDir(), "HOME=" + os.Getenv("HOME")}
			cmd.Env = append(env, c.env...)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != c.wantFail {
				t.Errorf("failed = %v (%v), want %v:\n%s", failed, err, c.wantFail, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
