package fuzztest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

var secret = bytes.Repeat([]byte("f"), 32)

func memStore(t testing.TB) store.Store {
	t.Helper()
	s, err := drivers.Open(context.Background(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wellFormed is what session tokens look like: 64 lowercase hex.
var wellFormed = regexp.MustCompile(`^[0-9a-f]{64}$`)

// countingStore counts the calls that reach the store.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	calls int
}

func (c *countingStore) count() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.count()
	return c.Store.Get(ctx, key)
}

func (c *countingStore) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	c.count()
	return c.Store.MGet(ctx, keys...)
}

func (c *countingStore) HGet(ctx context.Context, key, field string) ([]byte, error) {
	c.count()
	return c.Store.HGet(ctx, key, field)
}

func (c *countingStore) Eval(ctx context.Context, sc *store.Script, keys []string, args ...string) (store.Value, error) {
	c.count()
	return c.Store.Eval(ctx, sc, keys, args...)
}

func (c *countingStore) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	c.count()
	return c.Store.HGetAll(ctx, key)
}

func FuzzSessionToken(f *testing.F) {
	for _, seed := range []string{"", "x", strings.Repeat("a", 64), strings.Repeat("A", 64), strings.Repeat("0", 63),
		strings.Repeat("0", 65), strings.Repeat("g", 64), "Bearer " + strings.Repeat("a", 64), "\x00\xff", "%2e%2e"} {
		f.Add(seed)
	}
	cs := &countingStore{Store: memStore(f)}
	m, err := session.New(cs, [][]byte{secret}, nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		cs.mu.Lock()
		before := cs.calls
		cs.mu.Unlock()
		_, err := m.Validate(ctx, tok)
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Validate(%q) = %v, want ErrNotFound", tok, err)
		}
		cs.mu.Lock()
		after := cs.calls
		cs.mu.Unlock()
		if !wellFormed.MatchString(tok) && after != before {
			t.Fatalf("Validate(%q), a malformed token, made %d store calls", tok, after-before)
		}
		if err := m.Revoke(ctx, tok); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Revoke(%q) = %v, want ErrNotFound", tok, err)
		}
	})
}

func FuzzNamespaceKey(f *testing.F) {
	f.Add("tenant", "user", "x", uint8(0))
	f.Add("*", "{", "\n", uint8(1))
	f.Add("\xff\xfe", "a:b", "}{", uint8(2))
	f.Add("", "", "", uint8(3))
	f.Add(strings.Repeat("k", 20000), "a", "b", uint8(4))
	ns := store.MustNamespace("karat", "fuzz")
	f.Fuzz(func(t *testing.T, a, b, c string, flip uint8) {
		parts := []string{a, b, c}
		k, err := ns.Key(parts...)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Fatalf("Key(%q) = %v, want ErrInvalidKey", parts, err)
			}
			return
		}
		if !strings.HasPrefix(k, ns.Prefix()) {
			t.Fatalf("Key(%q) = %q, not under %q", parts, k, ns.Prefix())
		}
		if strings.ContainsAny(k[len(ns.Prefix()):], "{}") && !strings.ContainsAny(a+b+c, "{}") {
			t.Fatalf("Key(%q) = %q: braces from nowhere", parts, k)
		}
		// A tagged key's slot is the tag's, whatever the parts hold.
		tk, err := ns.TaggedKey(a, b, c)
		if err == nil && store.Slot(tk) != store.Slot("{"+tagOf(t, tk)+"}") {
			t.Fatalf("TaggedKey(%q, ...) = %q: slot not the tag's", a, tk)
		}
		// Injective: another part list, one byte apart, builds another key.
		other := append([]string(nil), parts...)
		i := int(flip) % 3
		other[i] += "\x00"
		if k2, err := ns.Key(other...); err == nil && k2 == k {
			t.Fatalf("Key(%q) and Key(%q) are both %q", parts, other, k)
		}
		other = []string{a + b, c}
		if k2, err := ns.Key(other...); err == nil && k2 == k {
			t.Fatalf("Key(%q) and Key(%q) are both %q", parts, other, k)
		}
	})
}

// tagOf returns the hash tag of key: what is between its first '{' and the
// next '}'.
func tagOf(t *testing.T, key string) string {
	i := strings.IndexByte(key, '{')
	j := strings.IndexByte(key[i+1:], '}')
	if i < 0 || j <= 0 {
		t.Fatalf("tagged key %q has no tag", key)
	}
	return key[i+1 : i+1+j]
}

func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.9:4242", "", "")
	f.Add("10.0.0.1:1", "198.51.100.7, 10.0.0.2", "")
	f.Add("10.0.0.1:1", "1.2.3.4", `for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`)
	f.Add("10.0.0.1:1", "unknown, 10.0.0.3", "for=unknown")
	f.Add("[2001:db8::1]:80", "::1", "for=_hidden")
	f.Add("garbage", "\x00", "for=\"\xff")
	f.Add("10.0.0.1:1", strings.Repeat("1.1.1.1,", 1000), "")
	cip, err := ratelimit.NewClientIP("10.0.0.0/8", "2001:db8:ffff::/48")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, peer, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		addr, ok := cip.Addr(r)
		key, kerr := cip.Key(r)
		peerAP, perr := netip.ParseAddrPort(peer)
		if !ok {
			if perr == nil {
				t.Fatalf("peer %q parses but Addr found nothing", peer)
			}
			return
		}
		if kerr != nil || key == "" {
			t.Fatalf("Addr found %v but Key = %q, %v", addr, key, kerr)
		}
		if !addr.IsValid() {
			t.Fatalf("Addr returned an invalid address for peer %q", peer)
		}
		peerAddr := peerAP.Addr().Unmap()
		trusted := perr == nil && (netip.MustParsePrefix("10.0.0.0/8").Contains(peerAddr) ||
			netip.MustParsePrefix("2001:db8:ffff::/48").Contains(peerAddr))
		if !trusted {
			if perr == nil && addr != peerAddr {
				t.Fatalf("untrusted peer %q, yet the client is %v (XFF %q, Forwarded %q)", peer, addr, xff, fwd)
			}
			return
		}
		// Behind a trusted peer the client is the peer or an address the
		// headers hold; never one made up.
		if addr != peerAddr && !mentions(xff+" "+fwd, addr) {
			t.Fatalf("client %v appears nowhere in XFF %q / Forwarded %q (peer %q)", addr, xff, fwd, peer)
		}
	})
}

// mentions reports whether text holds a spelling of a.
func mentions(text string, a netip.Addr) bool {
	text = strings.ToLower(text)
	if strings.Contains(text, a.String()) || strings.Contains(text, a.StringExpanded()) {
		return true
	}
	// Any address-looking token of text that parses to a.
	for _, tok := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ' ' || r == ';' || r == '"' || r == '=' || r == '[' || r == ']' || r == '\t'
	}) {
		if p, err := netip.ParseAddr(tok); err == nil && p.Unmap() == a {
			return true
		}
		if p, err := netip.ParseAddrPort(tok); err == nil && p.Addr().Unmap() == a {
			return true
		}
		if h, _, ok := strings.Cut(tok, ":"); ok {
			if p, err := netip.ParseAddr(h); err == nil && p.Unmap() == a {
				return true
			}
		}
	}
	return false
}

var (
	sfItem   = `"[A-Za-z0-9._~-]+"(;[a-z]+=(-?[0-9]+|:[A-Za-z0-9+/=]*:))*`
	sfList   = regexp.MustCompile(`^` + sfItem + `(, ` + sfItem + `)*$`)
	legacyRe = regexp.MustCompile(`^[0-9]+$`)
)

func FuzzRateLimitHeaders(f *testing.F) {
	f.Add("api", int64(100), int64(900_000), "ip4:203.0.113.9", int64(99), int64(9000), int64(0), true)
	f.Add("login", int64(5), int64(1), "", int64(0), int64(0), int64(1), false)
	f.Add("x", int64(1<<50), int64(366*24*3600*1000), "\n\r\x00", int64(-5), int64(-1), int64(1<<40), true)
	f.Fuzz(func(t *testing.T, name string, limit, windowMS int64, key string, remaining, resetMS, retryMS int64, legacy bool) {
		p := ratelimit.Policy{Name: name, Limit: limit, Window: time.Duration(windowMS) * time.Millisecond}
		if p.Validate() != nil {
			return // such a policy never decides
		}
		d := ratelimit.Decision{Policy: name, Allowed: retryMS <= 0, Limit: limit, Window: p.Window,
			Remaining: max(0, min(remaining, limit)), ResetAfter: time.Duration(max(0, resetMS)) * time.Millisecond,
			RetryAfter: time.Duration(max(0, retryMS)) * time.Millisecond}
		h := http.Header{}
		ratelimit.SetHeaders(h, []ratelimit.Request{{Policy: p, Key: key, Cost: 1}}, []ratelimit.Decision{d}, legacy)
		for _, name := range []string{"RateLimit-Policy", "RateLimit"} {
			v := h.Get(name)
			if !sfList.MatchString(v) {
				t.Fatalf("%s: %q is not a structured-field list of the draft's shape", name, v)
			}
		}
		for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			if v := h.Get(name); legacy && !legacyRe.MatchString(v) || !legacy && v != "" {
				t.Fatalf("%s = %q (legacy %v)", name, v, legacy)
			}
		}
		if key != "" && strings.Contains(h.Get("RateLimit"), key) && len(key) > 3 {
			t.Fatalf("the subject key %q appears in the header %q", key, h.Get("RateLimit"))
		}
	})
}

func FuzzStoreURL(f *testing.F) {
	for _, seed := range []string{"memory://", "memory://?max_entries=10", "redis://u:secretpw@127.0.0.1:1/0?driver=goredis",
		"redis+cluster://a:1,b:2", "redis+sentinel://h:1/m", "rediss://h:1?tls_ca=/nope", "redis://[::1", "redis://:pw@/",
		"memory://?max_bytes=-1", "\x00", "redis://h:1?client_cache=2", "redis://h:1/999999999999999999999"} {
		f.Add(seed)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // nothing is dialled
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := drivers.Open(done, raw)
		if s != nil {
			s.Close()
		}
		if err == nil {
			return
		}
		if !errors.Is(err, drivers.ErrBadURL) && !errors.Is(err, context.Canceled) &&
			!errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrConfig) {
			t.Fatalf("Open(%q) = %v: not a typed error", raw, err)
		}
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
				t.Fatalf("Open(%q): the error shows the password: %v", raw, err)
			}
		}
	})
}

// apiFixture is the API on the memory store with a logged-in owner.
type apiFixture struct {
	h     http.Handler
	token string
}

var (
	fixtureOnce sync.Once
	fixture     *apiFixture
	fixtureErr  error
)

const demoPassword = "fuzz password"

func newFixture(t testing.TB) *apiFixture {
	t.Helper()
	fixtureOnce.Do(func() {
		s, err := drivers.Open(context.Background(), "memory://")
		if err != nil {
			fixtureErr = err
			return
		}
		users, err := demo.NewUsers(demoPassword, 4)
		if err != nil {
			fixtureErr = err
			return
		}
		big := ratelimit.Policy{Name: "fuzz-api", Limit: 1 << 40, Window: time.Minute, FailMode: ratelimit.FailOpen}
		api, err := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
			SessionSecrets: [][]byte{secret},
			Policies: httpapi.Policies{API: big, PasswordReset: big.WithLimit(1 << 40),
				Invoice: big.WithLimit(1 << 40)},
		})
		if err != nil {
			fixtureErr = err
			return
		}
		r := mux.NewRouter()
		api.Mount(r)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/auth/login", strings.NewReader(
			`{"tenant":"tehran-gold","email":"owner@tehran-gold.test","password":"`+demoPassword+`"}`))
		req.Header.Set("Content-Type", "application/json")
		r.ServeHTTP(rec, req)
		var out struct{ Token string }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Token == "" {
			fixtureErr = errors.New("login failed: " + rec.Body.String())
			return
		}
		fixture = &apiFixture{h: r, token: out.Token}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func FuzzAPIBody(f *testing.F) {
	for _, seed := range []string{
		`{"tenant":"tehran-gold","email":"owner@tehran-gold.test","password":"wrong"}`,
		`{"email":"clerk@shiraz-silver.test"}`,
		`{"customer":"علی احمدی","total":150000}`,
		`{"customer_id":"c1","items":[{"product_id":"p1","grams":15.5}],"total":1e308}`,
		`[]`, `null`, `{"tenant":{"$ne":1}}`, `{"email":"` + strings.Repeat("a", 70000) + `"}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), `{"a":1}{"b":2}`, "\xff\xfe", `{"total":-1}`,
	} {
		for route := range uint8(3) {
			f.Add(route, seed)
		}
	}
	routes := []string{"/v1/auth/login", "/v1/auth/password-reset", "/v1/tenants/tehran-gold/invoices"}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		fx := newFixture(t)
		path := routes[int(route)%len(routes)]
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "192.0.2.1:1234"
		if strings.Contains(path, "tenants") {
			req.Header.Set("Authorization", "Bearer "+fx.token)
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != httpapi.ProblemContentType {
			t.Fatalf("POST %s: %d with Content-Type %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Code < 400 && !utf8.Valid(rec.Body.Bytes()) {
			t.Fatalf("POST %s: %d with a body that is not UTF-8", path, rec.Code)
		}
	})
}
