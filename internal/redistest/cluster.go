package redistest

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster.
type Cluster struct {
	Addrs   []string // every node
	Masters []string // the masters
	URL     string   // redis+cluster://h:p,h:p,h:p (the masters)
	Owned   bool     // started by this package, not named by KARAT_REDIS_CLUSTER_URL
}

var cluster once[*Cluster]

// ClusterServers returns the binary's Redis Cluster (3 masters, 1 replica
// each), starting it on first use, or the cluster KARAT_REDIS_CLUSTER_URL
// names (whose nodes are all taken for masters).
func ClusterServers(t testing.TB) *Cluster {
	t.Helper()
	return cluster.get(t, "redis cluster", func() (*Cluster, error) {
		if u := os.Getenv("KARAT_REDIS_CLUSTER_URL"); u != "" {
			return parseClusterURL(u)
		}
		if _, err := exec.LookPath("redis-cli"); err != nil {
			return nil, err
		}
		return startCluster()
	})
}

func parseClusterURL(u string) (*Cluster, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "redis+cluster" || pu.Host == "" {
		return nil, fmt.Errorf("KARAT_REDIS_CLUSTER_URL %q: want redis+cluster://h:p,h:p", u)
	}
	addrs := strings.Split(pu.Host, ",")
	return &Cluster{Addrs: addrs, Masters: addrs, URL: u}, nil
}

func startCluster() (*Cluster, error) {
	s := spec{bus: true, args: func(_ string, port int) ([]string, error) {
		return []string{"--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(port + 10000), "--cluster-node-timeout", "5000",
			"--repl-diskless-sync-delay", "0"}, nil
	}}
	addrs := make([]string, 6)
	for i := range addrs {
		p, err := startServer(s)
		if err != nil {
			return nil, err
		}
		addrs[i] = p.addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	// Ready means every node sees all 6 nodes and all 16384 slots served,
	// and every replica has synced, so tests see the same cluster from any
	// node.
	var masters []string
	err := poll("redis cluster", 30*time.Second, func() error {
		masters = masters[:0]
		for _, a := range addrs {
			info, err := command(a, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			s, _ := info.(string)
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:6"} {
				if !strings.Contains(s, want+"\r\n") {
					return fmt.Errorf("%s: CLUSTER INFO lacks %s", a, want)
				}
			}
			role, err := command(a, "ROLE")
			if err != nil {
				return err
			}
			r, _ := role.([]any)
			switch {
			case len(r) > 0 && r[0] == "master":
				masters = append(masters, a)
			case len(r) > 3 && r[0] == "slave" && r[3] == "connected":
			default:
				return fmt.Errorf("%s: ROLE %v", a, role)
			}
		}
		if len(masters) != 3 {
			return fmt.Errorf("%d masters", len(masters))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Cluster{Addrs: addrs, Masters: masters, URL: "redis+cluster://" + strings.Join(masters, ","), Owned: true}, nil
}
