package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FailoverCluster is a Redis Cluster of one test's own (3 masters, one
// replica each) whose nodes the test may kill and restart, so that a
// replica takes over from a dead master. Its node timeout is short (1 s), so
// a failover takes a few seconds instead of the default 15 or more.
type FailoverCluster struct {
	Nodes []*Killable // every node, masters and replicas
	URL   string      // redis+cluster:// with every node as a seed
}

// ClusterNodeTimeout is a FailoverCluster's cluster-node-timeout.
const ClusterNodeTimeout = time.Second

// NewFailoverCluster starts a private cluster and waits until every node
// sees it whole. The nodes are killed when the test ends.
func NewFailoverCluster(t testing.TB) *FailoverCluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		unavailable(t, "redis-cli for a failover cluster", err)
	}
	c := &FailoverCluster{}
	addrs := make([]string, 6)
	for i := range addrs {
		n := newKillable(t, NoPersistence, true, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", fmt.Sprint(ClusterNodeTimeout.Milliseconds()),
			"--repl-diskless-sync-delay", "0")
		c.Nodes = append(c.Nodes, n)
		addrs[i] = n.Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	c.URL = "redis+cluster://" + strings.Join(addrs, ",")
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// Node returns the node at addr, or nil.
func (c *FailoverCluster) Node(addr string) *Killable {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Roles returns the masters and, for each, its replica, as the live nodes
// report them (ROLE). A node that does not answer is left out.
func (c *FailoverCluster) Roles() (masters []string, replicaOf map[string]string) {
	replicaOf = map[string]string{}
	for _, n := range c.Nodes {
		if n.Pid() == 0 {
			continue
		}
		r, err := command(n.Addr, "ROLE")
		role, _ := r.([]any)
		if err != nil || len(role) == 0 {
			continue
		}
		switch role[0] {
		case "master":
			masters = append(masters, n.Addr)
		case "slave":
			if len(role) > 2 {
				replicaOf[n.Addr] = fmt.Sprintf("%v:%v", role[1], role[2])
			}
		}
	}
	return masters, replicaOf
}

// Masters returns the masters as the live nodes report them.
func (c *FailoverCluster) Masters() []string {
	m, _ := c.Roles()
	return m
}

// WaitHealthy waits until every live node reports cluster_state:ok with all
// 16384 slots, three masters, and every live replica synced.
func (c *FailoverCluster) WaitHealthy(timeout time.Duration) error {
	return poll("failover cluster", timeout, func() error {
		masters := 0
		for _, n := range c.Nodes {
			if n.Pid() == 0 {
				continue
			}
			info, err := command(n.Addr, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			s, _ := info.(string)
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384"} {
				if !strings.Contains(s, want+"\r\n") {
					return fmt.Errorf("%s: CLUSTER INFO lacks %s", n.Addr, want)
				}
			}
			r, err := command(n.Addr, "ROLE")
			if err != nil {
				return err
			}
			role, _ := r.([]any)
			switch {
			case len(role) > 0 && role[0] == "master":
				masters++
			case len(role) > 3 && role[0] == "slave" && role[3] == "connected":
			default:
				return fmt.Errorf("%s: ROLE %v", n.Addr, r)
			}
		}
		if masters != 3 {
			return fmt.Errorf("%d masters", masters)
		}
		return nil
	})
}

// FailoverSentinel is a primary and its replica watched by one sentinel
// (quorum 1), all of one test's own, so that the test may fail the primary
// over (SENTINEL FAILOVER) or kill it. down-after-milliseconds is 1 s.
type FailoverSentinel struct {
	Primary, Replica *Killable
	Sentinel         string // the sentinel's host:port
	MasterName       string
	URL              string // redis+sentinel://sentinel/master-name
}

// NewFailoverSentinel starts a private sentinel set-up and waits until the
// sentinel knows the replica (so that it can fail over to it).
func NewFailoverSentinel(t testing.TB) *FailoverSentinel {
	t.Helper()
	primary := NewKillable(t, NoPersistence, "--repl-diskless-sync-delay", "0")
	host, port, _ := strings.Cut(primary.Addr, ":")
	replica := NewKillable(t, NoPersistence, "--replicaof", host, port, "--repl-diskless-sync-delay", "0")
	err := poll("replica", 15*time.Second, func() error {
		role, err := command(replica.Addr, "ROLE")
		if r, _ := role.([]any); err == nil && (len(r) < 4 || r[3] != "connected") {
			err = fmt.Errorf("ROLE %v", role)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const name = "karat-failover"
	sn, err := startServer(spec{args: func(dir string, p int) ([]string, error) {
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nsentinel monitor %s %s %s 1\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n",
			p, name, host, port, name, name)
		return []string{conf, "--sentinel"}, os.WriteFile(conf, []byte(body), 0o600)
	}})
	if err != nil {
		unavailable(t, "redis sentinel", err)
	}
	t.Cleanup(sn.stop)
	err = poll("sentinel sees the replica", 20*time.Second, func() error {
		r, err := command(sn.addr, "SENTINEL", "replicas", name)
		if a, _ := r.([]any); err == nil && len(a) == 0 {
			err = fmt.Errorf("no replica yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return &FailoverSentinel{Primary: primary, Replica: replica, Sentinel: sn.addr, MasterName: name,
		URL: "redis+sentinel://" + sn.addr + "/" + name}
}

// MasterAddr returns the primary's address as the sentinel reports it.
func (s *FailoverSentinel) MasterAddr() (string, error) {
	r, err := command(s.Sentinel, "SENTINEL", "get-master-addr-by-name", s.MasterName)
	if err != nil {
		return "", err
	}
	a, _ := r.([]any)
	if len(a) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name answered %v", r)
	}
	return fmt.Sprintf("%v:%v", a[0], a[1]), nil
}
