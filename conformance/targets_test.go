package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/karat-go/karat/conformance"
	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/drivers/goredisstore"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/drivers/rueidisstore"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestConformance runs every suite (store and layers) on every target. Targets that need a
// server get it from internal/redistest (or KARAT_REDIS_URL /
// KARAT_REDIS_CLUSTER_URL); without one they fail, saying how to install
// redis-server, or skip loudly under KARAT_SKIP_REDIS=1.
func TestConformance(t *testing.T) {
	all := []string{store.CapCachedReads, store.CapScan, store.CapStats, store.CapUsage}
	noCache := []string{store.CapScan, store.CapStats, store.CapUsage}
	t.Run("memory", func(t *testing.T) {
		conformance.Run(t, newMemoryHarness)
	})
	t.Run("miniredis-goredis", func(t *testing.T) {
		conformance.Run(t, newMiniredisHarness)
	})
	t.Run("redis-goredis", func(t *testing.T) {
		srv := redistest.Single(t)
		conformance.Run(t, urlHarness(srv.URL+"?driver=goredis", noCache, srv.Addr, goredisUserClient(srv.Addr, false)))
	})
	t.Run("redis-rueidis", func(t *testing.T) {
		srv := redistest.Single(t)
		conformance.Run(t, urlHarness(srv.URL, all, srv.Addr, rueidisUserClient(srv.Addr, false)))
	})
	t.Run("redis-rueidis-nocache", func(t *testing.T) {
		srv := redistest.Single(t)
		conformance.Run(t, urlHarness(srv.URL+"?client_cache=0", noCache, srv.Addr, rueidisUserClient(srv.Addr, false)))
	})
	t.Run("cluster-goredis", func(t *testing.T) {
		c := redistest.ClusterServers(t)
		conformance.Run(t, clusterHarness(c, c.URL+"?driver=goredis", noCache, goredisUserClient(c.Masters[0], true)))
	})
	t.Run("cluster-rueidis", func(t *testing.T) {
		c := redistest.ClusterServers(t)
		conformance.Run(t, clusterHarness(c, c.URL, all, rueidisUserClient(c.Masters[0], true)))
	})
}

// memoryHarness: one memory store per case with a fake clock.
type memoryHarness struct {
	clock *memstore.FakeClock
	s     *memstore.Store
}

func newMemoryHarness(context.Context, *testing.T) (conformance.Harness, error) {
	clock := memstore.NewFakeClock(time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC))
	return &memoryHarness{clock: clock, s: memstore.New(&memstore.Options{Clock: clock})}, nil
}

// MakeStore returns the one store: instances of the memory driver cannot
// share data otherwise, and sharing it is what the suite needs.
func (h *memoryHarness) MakeStore(context.Context) (store.Store, error) { return h.s, nil }
func (h *memoryHarness) Capabilities() []string {
	return []string{store.CapInt64Update, store.CapScan, store.CapStats, store.CapUsage}
}
func (h *memoryHarness) Close()                  { h.s.Close() }
func (h *memoryHarness) SetNow(t time.Time)      { h.clock.Set(t) }
func (h *memoryHarness) Advance(d time.Duration) { h.clock.Advance(d) }
func (h *memoryHarness) CappedStore(_ context.Context, n int) (store.Store, error) {
	return memstore.New(&memstore.Options{MaxEntries: n, Clock: h.clock}), nil
}

// closers remembers what a harness opened, to close it at the end.
type closers struct {
	mu  sync.Mutex
	fns []func()
}

func (c *closers) add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *closers) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.fns {
		f()
	}
	c.fns = nil
}

// miniredisHarness: a miniredis server per case, go-redis driver; miniredis
// moves TTLs with FastForward and sets TIME with SetTime.
type miniredisHarness struct {
	closers
	t *testing.T
	m *miniredis.Miniredis
}

func newMiniredisHarness(_ context.Context, t *testing.T) (conformance.Harness, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, err
	}
	h := &miniredisHarness{t: t, m: m}
	h.add(m.Close)
	return h, nil
}

func (h *miniredisHarness) open(addr string) store.Store {
	s := goredisstore.New(redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}), &goredisstore.Options{CloseClient: true})
	h.add(func() { s.Close() })
	return s
}

func (h *miniredisHarness) MakeStore(context.Context) (store.Store, error) {
	return h.open(h.m.Addr()), nil
}
func (h *miniredisHarness) StoreURL() string { return "redis://" + h.m.Addr() + "?driver=goredis" }
func (h *miniredisHarness) Capabilities() []string {
	return []string{store.CapScan, store.CapStats, store.CapUsage}
}
func (h *miniredisHarness) SetNow(t time.Time)      { h.m.SetTime(t) }
func (h *miniredisHarness) Advance(d time.Duration) { h.m.FastForward(d) }
func (h *miniredisHarness) StalledStore(context.Context) (store.Store, func(), error) {
	p := redistest.NewProxy(h.t, h.m.Addr())
	return h.open(p.Addr), p.Stall, nil
}
func (h *miniredisHarness) StoreOverClient(ctx context.Context) (store.Store, func(context.Context) error, error) {
	return goredisUserClient(h.m.Addr(), false)(ctx, &h.closers)
}

// userClient makes a store over a client the "user" owns.
type userClient func(ctx context.Context, c *closers) (store.Store, func(context.Context) error, error)

func goredisUserClient(addr string, cluster bool) userClient {
	return func(_ context.Context, c *closers) (store.Store, func(context.Context) error, error) {
		var client redis.UniversalClient
		if cluster {
			client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
		} else {
			client = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		}
		c.add(func() { client.Close() })
		s := goredisstore.New(client, nil)
		return s, func(ctx context.Context) error { return client.Ping(ctx).Err() }, nil
	}
}

func rueidisUserClient(addr string, cluster bool) userClient {
	return func(_ context.Context, c *closers) (store.Store, func(context.Context) error, error) {
		client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: !cluster})
		if err != nil {
			return nil, nil, err
		}
		c.add(client.Close)
		s := rueidisstore.New(client, nil)
		return s, func(ctx context.Context) error { return client.Do(ctx, client.B().Ping().Build()).Error() }, nil
	}
}

// redisHarness opens stores with drivers.Open over a shared server; cases
// are kept apart by the suite's key prefixes.
type redisHarness struct {
	closers
	t         *testing.T
	url       string
	caps      []string
	proxyTo   string   // the address a stalled store's proxy forwards to
	pause     []string // or: the masters that CLIENT PAUSE stalls
	userStore userClient
}

// clusterHarness stalls a cluster with CLIENT PAUSE on every master: a
// proxy cannot stand in front of a cluster, whose clients follow the
// addresses the cluster announces.
func clusterHarness(c *redistest.Cluster, url string, caps []string, user userClient) conformance.HarnessMaker {
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		return &redisHarness{t: t, url: url, caps: caps, pause: c.Masters, userStore: user}, nil
	}
}

func urlHarness(url string, caps []string, proxyTo string, user userClient) conformance.HarnessMaker {
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		return &redisHarness{t: t, url: url, caps: caps, proxyTo: proxyTo, userStore: user}, nil
	}
}

func (h *redisHarness) MakeStore(ctx context.Context) (store.Store, error) {
	return h.open(ctx, h.url)
}

func (h *redisHarness) open(ctx context.Context, url string) (store.Store, error) {
	s, err := drivers.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	h.add(func() { s.Close() })
	return s, nil
}

func (h *redisHarness) Capabilities() []string { return h.caps }
func (h *redisHarness) StoreURL() string       { return h.url }

func (h *redisHarness) StalledStore(ctx context.Context) (store.Store, func(), error) {
	if len(h.pause) > 0 {
		s, err := h.open(ctx, h.url)
		return s, func() {
			for _, m := range h.pause {
				if err := redistest.PauseClients(m, 2*time.Second); err != nil {
					h.t.Errorf("CLIENT PAUSE %s: %v", m, err)
				}
			}
		}, err
	}
	return h.PartitionedStore(ctx)
}

func (h *redisHarness) PartitionedStore(ctx context.Context) (store.Store, func(), error) {
	switch {
	case len(h.pause) > 0:
		return nil, nil, fmt.Errorf("a cluster cannot be partitioned for one client (its clients go around a proxy, and CLIENT PAUSE would stall the writer too): %w", errors.ErrUnsupported)
	case h.proxyTo == "":
		return nil, nil, fmt.Errorf("this harness knows the server only by URL (TestExternal), not an address to put a proxy in front of: %w", errors.ErrUnsupported)
	}
	p := redistest.NewProxy(h.t, h.proxyTo)
	_, rest, _ := strings.Cut(h.url, "://")
	_, query, _ := strings.Cut(rest, "?")
	url := "redis://" + p.Addr
	if query != "" {
		url += "?" + query
	}
	s, err := h.open(ctx, url)
	return s, p.Stall, err
}

func (h *redisHarness) StoreOverClient(ctx context.Context) (store.Store, func(context.Context) error, error) {
	if h.userStore == nil {
		return nil, nil, errors.ErrUnsupported
	}
	return h.userStore(ctx, &h.closers)
}
