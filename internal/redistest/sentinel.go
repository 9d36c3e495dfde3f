package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sentinelMaster = "karat-test"

// SentinelServers returns the binary's Sentinel set-up (a primary, a replica
// and one sentinel with quorum 1), starting it on first use.
func SentinelServers(t testing.TB) *Sentinel {
	t.Helper()
	return sentinel.get(t, "redis sentinel", startSentinel)
}

func startSentinel() (*Sentinel, error) {
	primary, err := startRetry(func(int) []string { return nil })
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(primary, ":")
	if _, err := startRetry(func(int) []string { return []string{"--replicaof", host, port} }); err != nil {
		return nil, err
	}
	// A sentinel rewrites its configuration file, so it needs one of its own.
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	var addr string
	for range 5 {
		p, perr := freePort(false)
		if perr != nil {
			return nil, perr
		}
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(p)+".conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
			p, dir, sentinelMaster, host, port, sentinelMaster)
		if err = os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		addr, err = start([]string{conf, "--sentinel"}, "127.0.0.1:"+strconv.Itoa(p), false)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	err = poll("sentinel", 15*time.Second, func() error {
		r, err := command(addr, "SENTINEL", "get-master-addr-by-name", sentinelMaster)
		if err != nil {
			return err
		}
		if a, ok := r.([]any); !ok || len(a) != 2 {
			return fmt.Errorf("get-master-addr-by-name answered %v", r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Sentinel{Addrs: []string{addr}, MasterName: sentinelMaster, MasterAddr: primary,
		URL: "redis+sentinel://" + addr + "/" + sentinelMaster}, nil
}
