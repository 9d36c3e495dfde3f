package drivers

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

func TestOpenMemory(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"memory://", "memory:///", "memory://?max_entries=10&max_bytes=1000"} {
		s, err := Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		var m *memstore.Store
		if !s.As(&m) {
			t.Errorf("Open(%q) is not a memory store", u)
		}
		if err := s.Set(ctx, "k", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func TestOpenRefuses(t *testing.T) {
	for raw, want := range map[string]string{
		"":                                  "no scheme",
		"localhost:6379":                    "no scheme",
		"127.0.0.1:6379":                    "no scheme (want one of memory://",
		"mysql://x":                         `unknown scheme "mysql"`,
		"memory://?max_entries=-1":          "max_entries",
		"memory://?max_entries=lots":        "max_entries",
		"memory://?color=blue":              `unknown parameter "color"`,
		"memory://host":                     "no host",
		"memory://?max_bytes=1&max_bytes=2": "given 2 times",
		"redis://":                          "needs a host:port",
		"redis://localhost":                 "not host:port",
		"redis://localhost:99999":           "not a port number",
		"redis://localhost:6379/x":          `database "x"`,
		"redis://a:1,b:2":                   "takes one host",
		"redis://localhost:6379?driver=x":   `driver="x"`,
		"redis://localhost:6379?client_cache=maybe":            "client_cache",
		"redis://localhost:6379?driver=goredis&client_cache=1": "no client-side cache",
		"redis://localhost:6379?tls_ca=/x":                     `unknown parameter "tls_ca"`,
		"redis://localhost:6379?timeout=1s":                    `unknown parameter "timeout"`,
		"rediss://localhost:6379?tls_ca=/does/not/exist":       "tls_ca",
		"redis+cluster://a:1,b:2/3":                            "takes no path",
		"redis+sentinel://a:1,b:2":                             "master name",
		"redis+sentinel://a:1/m/x":                             `database "x"`,
		"redis://u:s3cret@%zz":                                 "",
	} {
		_, err := Open(context.Background(), raw)
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", raw, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %q, want it to mention %q", raw, err, want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) leaks the password: %v", raw, err)
		}
	}
}

func TestParseRedis(t *testing.T) {
	for raw, want := range map[string]redisConfig{
		"redis://localhost:6379":                             {addrs: []string{"localhost:6379"}, driver: "rueidis", cache: true},
		"redis://u:p@localhost:6379/2?driver=goredis":        {addrs: []string{"localhost:6379"}, username: "u", password: "p", db: 2, driver: "goredis"},
		"redis://:p@[::1]:6379?client_cache=0":               {addrs: []string{"[::1]:6379"}, password: "p", driver: "rueidis"},
		"redis+cluster://a:1,b:2":                            {addrs: []string{"a:1", "b:2"}, cluster: true, driver: "rueidis", cache: true},
		"redis+sentinel://a:1,b:2/mymaster/3?driver=goredis": {addrs: []string{"a:1", "b:2"}, masterName: "mymaster", db: 3, driver: "goredis"},
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseRedis(u)
		if err != nil {
			t.Fatalf("parseRedis(%q): %v", raw, err)
		}
		if strings.Join(got.addrs, ",") != strings.Join(want.addrs, ",") || got.username != want.username ||
			got.password != want.password || got.db != want.db || got.cluster != want.cluster ||
			got.masterName != want.masterName || got.driver != want.driver || got.cache != want.cache {
			t.Errorf("parseRedis(%q) = %+v, want %+v", raw, *got, want)
		}
	}
	u, _ := url.Parse("rediss://cache.example:6380")
	got, err := parseRedis(u)
	if err != nil || got.tls == nil || got.tls.ServerName != "cache.example" {
		t.Fatalf("rediss: %+v, %v", got, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	// Port 1 on loopback refuses connections.
	for _, raw := range []string{"redis://127.0.0.1:1", "redis://127.0.0.1:1?driver=goredis"} {
		_, err := Open(context.Background(), raw)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Open(%q) = %v, want ErrUnavailable", raw, err)
		}
	}
}

func TestRegister(t *testing.T) {
	// Registration is for the life of the process: a scheme of its own per
	// run keeps -count=N working.
	scheme := "fake-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	Register(scheme, func(ctx context.Context, u *url.URL) (store.Store, error) {
		return memstore.New(nil), nil
	})
	s, err := Open(context.Background(), scheme+"://anything")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	defer func() {
		if recover() == nil {
			t.Error("registering a scheme twice should panic")
		}
	}()
	Register(scheme, func(context.Context, *url.URL) (store.Store, error) { return nil, nil })
}
