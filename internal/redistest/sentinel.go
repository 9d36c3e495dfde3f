package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Sentinel is a primary and its replica, watched by sentinels.
type Sentinel struct {
	Addrs      []string // the sentinels
	MasterName string
	MasterAddr string // the primary's host:port
	URL        string // redis+sentinel://h:p,h:p/mastername
}

const sentinelMaster = "karat-test"

var sentinel once[*Sentinel]

// SentinelServers returns the binary's Sentinel set-up (a primary, a
// replica and one sentinel with quorum 1), starting it on first use.
func SentinelServers(t testing.TB) *Sentinel {
	t.Helper()
	return sentinel.get(t, "redis sentinel", startSentinel)
}

func startSentinel() (*Sentinel, error) {
	// No delay before a full sync: the replica is waited for below.
	primary, err := startServer(plainSpec("--repl-diskless-sync-delay", "0"))
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(primary.addr, ":")
	replica, err := startServer(plainSpec("--replicaof", host, port))
	if err != nil {
		return nil, err
	}
	// A sentinel seeing the replica synced from its first look at the
	// primary lists it at once rather than at its next periodic INFO.
	err = poll("replica", 15*time.Second, func() error {
		role, err := command(replica.addr, "ROLE")
		if r, _ := role.([]any); err == nil && (len(r) < 4 || r[3] != "connected") {
			err = fmt.Errorf("ROLE %v", role)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// A sentinel rewrites its config file, so it gets one of its own.
	sn, err := startServer(spec{args: func(dir string, p int) ([]string, error) {
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
			p, sentinelMaster, host, port, sentinelMaster)
		return []string{conf, "--sentinel"}, os.WriteFile(conf, []byte(body), 0o600)
	}})
	if err != nil {
		return nil, err
	}
	err = poll("sentinel", 15*time.Second, func() error {
		r, err := command(sn.addr, "SENTINEL", "get-master-addr-by-name", sentinelMaster)
		if a, _ := r.([]any); err == nil && len(a) != 2 {
			err = fmt.Errorf("get-master-addr-by-name answered %v", r)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Sentinel{Addrs: []string{sn.addr}, MasterName: sentinelMaster, MasterAddr: primary.addr,
		URL: "redis+sentinel://" + sn.addr + "/" + sentinelMaster}, nil
}
