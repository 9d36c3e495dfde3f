package redistest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClusterServers returns the binary's Redis Cluster (3 masters, 1 replica
// each), starting it on first use.
func ClusterServers(t testing.TB) *Cluster {
	t.Helper()
	return cluster.get(t, "redis cluster", func() (*Cluster, error) {
		if u := os.Getenv("KARAT_REDIS_CLUSTER_URL"); u != "" {
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme != "redis+cluster" || pu.Host == "" {
				return nil, fmt.Errorf("KARAT_REDIS_CLUSTER_URL %q: want redis+cluster://host:port,host:port", u)
			}
			addrs := strings.Split(pu.Host, ",")
			return &Cluster{Addrs: addrs, Masters: addrs, URL: u}, nil
		}
		if _, err := exec.LookPath("redis-cli"); err != nil {
			return nil, err
		}
		return startCluster()
	})
}

func startCluster() (*Cluster, error) {
	var addrs []string
	for range 6 {
		addr, err := startRetryBus(true, func(port int) []string {
			return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(port + 10000), "--cluster-node-timeout", "5000",
				"--repl-diskless-sync-delay", "0", "--appendonly", "no"}
		})
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	// Every node must agree that the cluster is ok and see all 16384 slots.
	err = poll("cluster state", 30*time.Second, func() error {
		for _, a := range addrs {
			info, err := command(a, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			s, _ := info.(string)
			if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_slots_assigned:16384") {
				return fmt.Errorf("%s: %s", a, firstLine(s))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var masters []string
	for _, a := range addrs {
		role, err := command(a, "ROLE")
		if err != nil {
			return nil, err
		}
		if r, ok := role.([]any); ok && len(r) > 0 && r[0] == "master" {
			masters = append(masters, a)
		}
	}
	if len(masters) != 3 {
		return nil, errors.New("cluster: want 3 masters, found " + strconv.Itoa(len(masters)))
	}
	return &Cluster{Addrs: addrs, Masters: masters, URL: "redis+cluster://" + strings.Join(masters, ","), Owned: true}, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}
