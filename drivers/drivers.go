// Package drivers opens a karat store from a URL, so configuration, not code,
// picks the driver:
//
//	memory://[?max_entries=N][&max_bytes=N]
//	redis://[user:password@]host:port[/db][?driver=rueidis|goredis][&client_cache=0|1]
//	rediss://...                 TLS; add tls_ca=/path/ca.pem to trust a private CA
//	redis+cluster://[user:password@]h1:p1,h2:p2[?...]
//	redis+sentinel://[user:password@]h1:p1,h2:p2/master-name[/db][?...]
//
// The Redis schemes use the rueidis driver with client-side caching unless
// driver=goredis or client_cache=0. karat parses these URLs itself (neither
// client library has cluster or sentinel URLs of this shape, and rueidis's
// parser ignores parameters it does not know) and refuses what it does not
// understand: an unknown scheme or parameter, a bad value, a database on a
// cluster, a missing host, a URL without "scheme://". The error names the
// problem, and is ErrBadURL.
//
// # Secrets in the URL
//
// No part of the user-info (user name or password) appears in any error,
// however malformed the URL: karat splits it off itself, at the last '@' of
// the URL, before net/url sees the rest, and messages show the URL without
// it. So a password may hold '/', '?', '#', ':' or '@' unescaped; a '%' in it
// must be written %25 (percent-escapes are decoded), and an '@' after the
// host (in a tls_ca path, say) must be written %40.
//
// # Deadlines and failing fast
//
// Open returns by its context's deadline, or after DefaultOpenTimeout when
// the context has none, even where a client library would wait longer
// (rueidis dials in rueidis.NewClient, which takes no context). It checks
// that the store answers a PING before returning it. A server that refuses
// connections fails Open at once with store.ErrUnavailable and the dial
// error; a wrong password or user, or a database the server does not have,
// fails it with store.ErrConfig, which does not suggest a retry.
//
// The clients Open builds also fail fast on every later call while a server
// refuses connections, and recover by themselves when it is back:
//
//   - rueidis: RetryDelay is rueidisstore.RetryDelay, which does not retry a
//     refused connection (rueidis otherwise retries read-only commands until
//     the caller's deadline); each call dials once and fails in well under a
//     millisecond on loopback. A dial attempt is bounded by 5s. Recovery is
//     at the first call after the server is back.
//   - go-redis: one dial attempt per connection (DialerRetries 1, not 5 at
//     100ms intervals), one command retry with a 2–20ms backoff (MaxRetries
//     1, not 3 with up to 1s), DialTimeout 5s. A call fails in milliseconds
//     with "connection refused". After a pool's worth of failed dials
//     go-redis stops dialling and answers with the last dial error, probing
//     the server once a second, so recovery takes up to about a second.
//
// go-redis prints a log line to stderr for each failed dial by default;
// Open routes go-redis's (process-wide) logger to log/slog at Debug level
// the first time it builds a go-redis client (goredisstore.SlogLogger):
// karat reports those failures as errors.
//
// Clients that Open builds belong to the store: closing the store closes
// them.
//
// Register adds schemes for third-party drivers.
package drivers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/karat-go/karat/drivers/goredisstore"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/drivers/rueidisstore"
	"github.com/karat-go/karat/store"
)

// ErrBadURL is the class of every error about the URL itself.
var ErrBadURL = errors.New("karat/drivers: bad store URL")

// OpenFunc opens a store for a parsed URL of the scheme it was registered for.
type OpenFunc func(ctx context.Context, u *url.URL) (store.Store, error)

var (
	mu      sync.RWMutex
	openers = map[string]OpenFunc{}
)

// Register makes Open use fn for URLs of scheme. It panics when scheme is
// already registered or fn is nil, like database/sql.Register: both are
// programming errors found at start-up.
func Register(scheme string, fn OpenFunc) {
	mu.Lock()
	defer mu.Unlock()
	if fn == nil {
		panic("karat/drivers: Register of a nil OpenFunc for " + scheme)
	}
	if _, dup := openers[scheme]; dup {
		panic("karat/drivers: Register called twice for scheme " + scheme)
	}
	openers[scheme] = fn
}

func init() {
	Register("memory", openMemory)
	for _, s := range []string{"redis", "rediss", "redis+cluster", "redis+sentinel"} {
		Register(s, openRedis)
	}
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// DefaultOpenTimeout bounds Open when its context has no deadline: a server
// that accepts the connection and never answers (a TLS client talking to a
// plaintext server, say) must not hang start-up forever.
const DefaultOpenTimeout = 10 * time.Second

// dialTimeout bounds one connection attempt of the clients Open builds, on
// every call, not only in Open: without a deadline in the caller's context
// nothing else would.
const dialTimeout = 5 * time.Second

// Open parses rawURL and opens the store it names, and checks that it
// answers a PING. No part of the URL's user-info (user name or password)
// is ever part of an error message, however malformed the URL.
//
// Open returns by ctx's deadline, or after DefaultOpenTimeout when ctx has
// none. A server that refuses connections fails it at once, with the cause
// (store.ErrUnavailable joined with the dial error); a wrong password, user
// or database index fails it with store.ErrConfig; a deadline that passes
// first gives store.ErrUnavailable joined with context.DeadlineExceeded.
func Open(ctx context.Context, rawURL string) (store.Store, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	mu.RLock()
	fn := openers[u.Scheme]
	mu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("%w: unknown scheme %q (want one of %s)", ErrBadURL, u.Scheme, schemeList())
	}
	where := redacted(u)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("karat/drivers: %s: %w", where, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultOpenTimeout)
		defer cancel()
	}
	type result struct {
		s   store.Store
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := fn(ctx, u)
		if err == nil {
			if err = s.Ping(ctx); err != nil {
				s.Close()
				s = nil
			}
		}
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if errors.Is(r.err, ErrBadURL) {
				return nil, r.err
			}
			return nil, fmt.Errorf("karat/drivers: %s: %w", where, r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		// A client library that does not honour ctx (rueidis dials in
		// NewClient, which takes none) finishes in the background; what it
		// built is closed then.
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("karat/drivers: %s: %w", where, err)
	}
}

// redacted is u without its user-info, for messages: not even the user
// name, which may be a secret of its own (or hold a misplaced password).
func redacted(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// parseURL parses a store URL. karat splits off the user-info itself,
// before net/url sees the URL: a password with an unescaped '/', '?', '#' or
// '@' would otherwise end the authority early, and net/url's error (or the
// host it found) would quote a piece of it. The user-info is everything
// before the last '@' of the URL, so nothing of it is ever quoted; an '@'
// after the host (in a tls_ca path, say) must be written %40. Percent-escapes
// in the user-info are decoded; a '%' that starts no valid escape is
// refused.
func parseURL(raw string) (*url.URL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !validScheme(scheme) {
		return nil, fmt.Errorf("%w: no scheme (want one of %s)", ErrBadURL, schemeList())
	}
	var user *url.Userinfo
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		name, pass, hasPass := strings.Cut(rest[:at], ":")
		var err1, err2 error
		if name, err1 = url.PathUnescape(name); hasPass {
			pass, err2 = url.PathUnescape(pass)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: the user-info is not valid percent-encoding (write a '%%' in a password as %%25)", ErrBadURL)
		}
		if hasPass {
			user = url.UserPassword(name, pass)
		} else {
			user = url.User(name)
		}
		rest = rest[at+1:]
	}
	u, err := url.Parse(strings.ToLower(scheme) + "://" + rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadURL, redactParseError(err))
	}
	u.User = user
	return u, nil
}

// hostList reports whether s is one or more comma-separated host:port.
func hostList(s string) bool {
	for _, h := range strings.Split(s, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return false
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
	}
	return s != ""
}

// validScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-', '.').
func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// schemeList is "memory://, redis://, ..." for messages.
func schemeList() string {
	var out []string
	for _, s := range Schemes() {
		out = append(out, s+"://")
	}
	return strings.Join(out, ", ")
}

func redactParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// params checks that the query holds only the allowed keys, each once.
func params(u *url.URL, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: query: %v", ErrBadURL, err)
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return nil, fmt.Errorf("%w: unknown parameter %q (%s takes none)", ErrBadURL, k, u.Scheme)
			}
			return nil, fmt.Errorf("%w: unknown parameter %q (%s takes %s)", ErrBadURL, k, u.Scheme, strings.Join(allowed, ", "))
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("%w: parameter %q given %d times", ErrBadURL, k, len(vs))
		}
	}
	return q, nil
}

func intParam(q url.Values, name string, bits int) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q is not a non-negative integer", ErrBadURL, name, v)
	}
	return n, nil
}

func openMemory(_ context.Context, u *url.URL) (store.Store, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("%w: memory:// takes no host, user or path", ErrBadURL)
	}
	q, err := params(u, "max_entries", "max_bytes")
	if err != nil {
		return nil, err
	}
	maxEntries, err := intParam(q, "max_entries", strconv.IntSize)
	if err != nil {
		return nil, err
	}
	maxBytes, err := intParam(q, "max_bytes", 64)
	if err != nil {
		return nil, err
	}
	return memstore.New(&memstore.Options{MaxEntries: int(maxEntries), MaxBytes: maxBytes}), nil
}

// redisConfig is what a Redis URL says, independent of the driver.
type redisConfig struct {
	addrs      []string
	username   string
	password   string
	db         int
	tls        *tls.Config
	cluster    bool
	masterName string // sentinel
	driver     string
	cache      bool
}

// connWriteTimeout bounds how long a write may sit unacknowledged on a
// connection before the client drops it. Without it, rueidis kept a silently
// partitioned connection (and the cache it feeds) for 12.5 s in our
// measurements; the staleness bound of GetCached does not depend on it, but
// recovery does.
const connWriteTimeout = 2 * time.Second

func parseRedis(u *url.URL) (*redisConfig, error) {
	c := &redisConfig{driver: "rueidis", cache: true}
	allowed := []string{"driver", "client_cache"}
	if u.Scheme == "rediss" {
		allowed = append(allowed, "tls_ca")
	}
	q, err := params(u, allowed...)
	if err != nil {
		return nil, err
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%w: %s:// needs a host:port", ErrBadURL, u.Scheme)
	}
	for _, h := range strings.Split(u.Host, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			if u.User != nil {
				return nil, fmt.Errorf("%w: %q is not host:port (an '@' outside the user-info must be written %%40)", ErrBadURL, h)
			}
			return nil, fmt.Errorf("%w: %q is not host:port", ErrBadURL, h)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%w: port %q of %q is not a port number", ErrBadURL, port, h)
		}
		c.addrs = append(c.addrs, h)
	}
	if u.User != nil {
		c.username = u.User.Username()
		c.password, _ = u.User.Password()
	}
	path := strings.TrimPrefix(u.Path, "/")
	switch u.Scheme {
	case "redis", "rediss":
		if len(c.addrs) != 1 {
			return nil, fmt.Errorf("%w: %s:// takes one host; use redis+cluster:// or redis+sentinel:// for several", ErrBadURL, u.Scheme)
		}
	case "redis+cluster":
		c.cluster = true
		if path != "" {
			return nil, fmt.Errorf("%w: redis+cluster:// takes no path (a cluster has only database 0)", ErrBadURL)
		}
	case "redis+sentinel":
		name, rest, _ := strings.Cut(path, "/")
		if name == "" {
			return nil, fmt.Errorf("%w: redis+sentinel:// needs the master name as its path", ErrBadURL)
		}
		c.masterName, path = name, rest
	}
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("%w: database %q is not a non-negative integer", ErrBadURL, path)
		}
		c.db = db
	}
	switch d := q.Get("driver"); d {
	case "", "rueidis":
	case "goredis":
		c.driver = d
		c.cache = false
	default:
		return nil, fmt.Errorf("%w: driver=%q (want rueidis or goredis)", ErrBadURL, d)
	}
	switch v := q.Get("client_cache"); v {
	case "":
	case "0", "false":
		c.cache = false
	case "1", "true":
		if c.driver == "goredis" {
			return nil, fmt.Errorf("%w: client_cache=%s needs driver=rueidis (go-redis has no client-side cache)", ErrBadURL, v)
		}
		c.cache = true
	default:
		return nil, fmt.Errorf("%w: client_cache=%q (want 0 or 1)", ErrBadURL, v)
	}
	if u.Scheme == "rediss" {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if host, _, _ := net.SplitHostPort(c.addrs[0]); host != "" {
			c.tls.ServerName = host
		}
		if ca := q.Get("tls_ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("%w: tls_ca: %v", ErrBadURL, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: tls_ca %q holds no PEM certificate", ErrBadURL, ca)
			}
			c.tls.RootCAs = pool
		}
	}
	return c, nil
}

func openRedis(_ context.Context, u *url.URL) (store.Store, error) {
	c, err := parseRedis(u)
	if err != nil {
		return nil, err
	}
	if c.driver == "goredis" {
		routeGoRedisLogs.Do(func() { redis.SetLogger(goredisstore.SlogLogger(nil)) })
		return goredisstore.New(c.goredisClient(), &goredisstore.Options{CloseClient: true}), nil
	}
	opt := rueidis.ClientOption{
		InitAddress:      c.addrs,
		Username:         c.username,
		Password:         c.password,
		SelectDB:         c.db,
		TLSConfig:        c.tls,
		DisableCache:     !c.cache,
		ConnWriteTimeout: connWriteTimeout,
		Dialer:           net.Dialer{Timeout: dialTimeout},
		RetryDelay:       rueidisstore.RetryDelay,
	}
	switch {
	case c.masterName != "":
		opt.Sentinel = rueidis.SentinelOption{MasterSet: c.masterName}
	case !c.cluster:
		opt.ForceSingleClient = true
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, rueidisstore.MapError(context.Background(), err)
	}
	return rueidisstore.New(client, &rueidisstore.Options{CloseClient: true, DisableCache: !c.cache}), nil
}

// routeGoRedisLogs sends go-redis's log lines, which it prints to stderr
// by default (one per failed dial while a server is down), to log/slog at
// Debug level, the first time Open builds a go-redis client: karat reports
// those failures as errors. The logger is process-wide in go-redis.
var routeGoRedisLogs sync.Once

// goRedisRetries are the command retries of the go-redis clients Open
// builds: one, for a pooled connection the server closed (a restart), with a
// short backoff. go-redis's defaults (3 retries of every dial error, with
// backoff up to 1s, each dial retried 5 times 100ms apart) made a call against
// a server that refuses connections take its whole deadline and lose the
// cause; with these it fails in milliseconds with "connection refused".
const (
	goRedisMaxRetries    = 1
	goRedisMinBackoff    = 2 * time.Millisecond
	goRedisMaxBackoff    = 20 * time.Millisecond
	goRedisDialerRetries = 1 // one attempt per dial
)

// goRedisClusterReload is how old go-redis's cluster slot map may get
// before a command reloads it (in the background, CLUSTER SLOTS on one
// node). go-redis reloads the map on MOVED, but not when a master refuses
// connections: with its default (60 s) the slots of a master that was
// killed and replaced by its replica stayed routed to the dead address for
// up to a minute (internal/faulttest TestClusterFailover).
const goRedisClusterReload = 500 * time.Millisecond

func (c *redisConfig) goredisClient() redis.UniversalClient {
	switch {
	case c.masterName != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.masterName, SentinelAddrs: c.addrs,
			Username: c.username, Password: c.password, DB: c.db,
			TLSConfig: c.tls, ContextTimeoutEnabled: true, DialTimeout: dialTimeout,
			MaxRetries: goRedisMaxRetries, MinRetryBackoff: goRedisMinBackoff, MaxRetryBackoff: goRedisMaxBackoff,
			DialerRetries: goRedisDialerRetries,
		})
	case c.cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.addrs, Username: c.username, Password: c.password,
			TLSConfig: c.tls, ContextTimeoutEnabled: true, DialTimeout: dialTimeout,
			MaxRetries: goRedisMaxRetries, MinRetryBackoff: goRedisMinBackoff, MaxRetryBackoff: goRedisMaxBackoff,
			DialerRetries: goRedisDialerRetries, ClusterStateReloadInterval: goRedisClusterReload,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr: c.addrs[0], Username: c.username, Password: c.password, DB: c.db,
		TLSConfig: c.tls, ContextTimeoutEnabled: true, DialTimeout: dialTimeout,
		MaxRetries: goRedisMaxRetries, MinRetryBackoff: goRedisMinBackoff, MaxRetryBackoff: goRedisMaxBackoff,
		DialerRetries: goRedisDialerRetries,
	})
}
