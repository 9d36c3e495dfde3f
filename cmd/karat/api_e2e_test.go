package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

// target is a store the API tests run on.
type target struct {
	name    string
	url     string
	redis   string // host:port of the Redis server, "" for memory
	cluster []string
}

// targets are memory://, a real Redis through each driver, and a 3-master
// Redis Cluster through each driver.
func targets(t *testing.T) []target {
	t.Helper()
	ts := []target{{name: "memory", url: "memory://"}}
	srv := redistest.Single(t)
	ts = append(ts,
		target{name: "redis-rueidis", url: srv.URL, redis: srv.Addr},
		target{name: "redis-goredis", url: srv.URL + "?driver=goredis", redis: srv.Addr},
	)
	cl := redistest.ClusterServers(t)
	ts = append(ts,
		target{name: "cluster-rueidis", url: cl.URL, redis: cl.Masters[0], cluster: cl.Masters},
		target{name: "cluster-goredis", url: cl.URL + "?driver=goredis", redis: cl.Masters[0], cluster: cl.Masters},
	)
	return ts
}

// client returns a go-redis client on the target's server or cluster.
func (tg target) client() redis.UniversalClient {
	if len(tg.cluster) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: tg.cluster})
	}
	return redis.NewClient(&redis.Options{Addr: tg.redis})
}

// startOn starts a server on tg under a namespace of its own, with the demo
// and the test password, and deletes its keys from Redis at the end.
func startOn(t *testing.T, tg target, args ...string) (*server, string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	nsName := "karat-e2e:" + hex.EncodeToString(b[:])
	ns, err := store.NewNamespace(strings.Split(nsName, ":")...)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--store", tg.url, "--namespace", nsName, "--demo", "--demo-password", testPassword,
		"--bcrypt-cost", "4", "--session-secret", "0123456789abcdef0123456789abcdef-e2e"}, args...)
	srv := startServer(t, nil, all...)
	if tg.redis != "" {
		t.Cleanup(func() {
			rc := tg.client()
			defer rc.Close()
			ctx := context.Background()
			keys, _ := scanAll(ctx, rc, ns.Prefix())
			for _, k := range keys {
				rc.Del(ctx, k)
			}
		})
	}
	return srv, ns.Prefix()
}

// scanAll lists the keys under prefix, on every master of a cluster.
func scanAll(ctx context.Context, rc redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	if cc, ok := rc.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, scan)
		return out, err
	}
	return out, scan(ctx, rc.(*redis.Client))
}

// dbSize is the number of keys, summed over a cluster's masters.
func dbSize(ctx context.Context, rc redis.UniversalClient) int64 {
	if cc, ok := rc.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var n int64
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			k := c.DBSize(ctx).Val()
			mu.Lock()
			n += k
			mu.Unlock()
			return nil
		})
		return n
	}
	return rc.DBSize(ctx).Val()
}

func escapeGlob(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func (c *client) login(tenant, email, password string) *resp {
	c.t.Helper()
	return c.do("POST", "/v1/auth/login", map[string]string{"tenant": tenant, "email": email, "password": password})
}

// loginOK logs in and returns the token.
func (c *client) loginOK(tenant, email string) string {
	c.t.Helper()
	r := c.login(tenant, email, testPassword)
	wantStatus(c.t, r, http.StatusOK, "login "+email)
	tok, _ := r.json(c.t)["token"].(string)
	if len(tok) != 64 {
		c.t.Fatalf("login token %q", tok)
	}
	c.srv.mu.Lock()
	c.srv.tokens = append(c.srv.tokens, tok)
	c.srv.mu.Unlock()
	return tok
}

// Structured-field syntax of the two rate-limit fields (draft-ietf-httpapi-
// ratelimit-headers): a list of "name";q=N;w=N;pk=:b64: and "name";r=N;t=N;pk=:b64:.
var (
	sfPolicy = regexp.MustCompile(`^"[A-Za-z0-9._~-]+";q=\d+;w=\d+;pk=:[A-Za-z0-9+/=]+:$`)
	sfLimit  = regexp.MustCompile(`^"[A-Za-z0-9._~-]+";r=\d+;t=\d+;pk=:[A-Za-z0-9+/=]+:$`)
)

// wantRateLimitHeaders checks both fields on a /v1 response and that the
// given policies are among them.
func wantRateLimitHeaders(t *testing.T, r *resp, what string, policies ...string) {
	t.Helper()
	pol, cur := r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit")
	if pol == "" || cur == "" {
		t.Fatalf("%s: no RateLimit-Policy / RateLimit (got %q / %q)", what, pol, cur)
	}
	pi, ci := strings.Split(pol, ", "), strings.Split(cur, ", ")
	if len(pi) != len(ci) {
		t.Fatalf("%s: %d policies but %d RateLimit items", what, len(pi), len(ci))
	}
	for i := range pi {
		if !sfPolicy.MatchString(pi[i]) {
			t.Errorf("%s: RateLimit-Policy item %q is not the draft's syntax", what, pi[i])
		}
		if !sfLimit.MatchString(ci[i]) {
			t.Errorf("%s: RateLimit item %q is not the draft's syntax", what, ci[i])
		}
	}
	for _, p := range append([]string{"api"}, policies...) {
		if !strings.Contains(pol, `"`+p+`";`) {
			t.Errorf("%s: RateLimit-Policy %q lacks %q", what, pol, p)
		}
	}
	if strings.Contains(pol+cur, "127.0.0.1") {
		t.Errorf("%s: a raw IP in the rate-limit fields", what)
	}
}

// TestAPI runs the API's routes and errors on each target.
func TestAPI(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			srv, prefix := startOn(t, tg, "--rate-limits", "api 10000/15m fail=open", "--upload-max-bytes", "4096")
			t.Run("Walkthrough", func(t *testing.T) { walkthrough(t, srv) })
			t.Run("AuthErrors", func(t *testing.T) { authErrors(t, srv) })
			t.Run("TenantIsolation", func(t *testing.T) { tenantIsolation(t, srv) })
			t.Run("Sessions", func(t *testing.T) { sessionsRoutes(t, srv) })
			t.Run("LoginRotates", func(t *testing.T) { loginRotates(t, srv) })
			t.Run("ConcurrentFailedLogins", func(t *testing.T) { concurrentFailedLogins(t, srv) })
			t.Run("PasswordReset", func(t *testing.T) { passwordReset(t, srv) })
			t.Run("InvoiceLimit", func(t *testing.T) { invoiceLimit(t, srv) })
			t.Run("AdminStats", func(t *testing.T) { adminStats(t, srv) })
			if tg.redis != "" {
				t.Run("NoSecretsAtRest", func(t *testing.T) { noSecretsAtRest(t, srv, tg, prefix) })
			}
			srv.stop()
			logs := srv.stderr.String()
			if strings.Contains(logs, testPassword) {
				t.Errorf("the password reached the logs")
			}
			srv.mu.Lock()
			for _, tok := range srv.tokens {
				if strings.Contains(logs, tok) || strings.Contains(logs, tok[:16]) {
					t.Errorf("a session token reached the logs")
					break
				}
			}
			srv.mu.Unlock()
		})
	}
}

// walkthrough is the README's curl walkthrough, asserted.
func walkthrough(t *testing.T, srv *server) {
	c := srv.client()
	c.loginOK("tehran-gold", "owner@tehran-gold.test")

	r := c.do("GET", "/v1/tenants/tehran-gold/kpis", nil)
	wantStatus(t, r, 200, "kpis")
	if got := r.header.Get("Cache-Status"); got != "karat; fwd=miss; stored" {
		t.Errorf("first kpis Cache-Status %q, want a miss", got)
	}
	wantRateLimitHeaders(t, r, "kpis")
	k := r.json(t)
	if k["sales"] != 25000.0 || k["profit"] != 5000.0 || k["customers"] != 8.0 || k["gold_g"] != 350.75 {
		t.Errorf("kpis %v", k)
	}
	r = c.do("GET", "/v1/tenants/tehran-gold/kpis", nil)
	if got := r.header.Get("Cache-Status"); got != "karat; hit" {
		t.Errorf("second kpis Cache-Status %q, want a hit", got)
	}

	r = c.do("GET", "/v1/tenants/tehran-gold/customers/1", nil)
	wantStatus(t, r, 200, "customer")
	if m := r.json(t); m["name"] != "علی احمدی" || m["balance"] != 75000.0 {
		t.Errorf("customer %v", m)
	}
	if !bytes.Contains(r.body, []byte("علی احمدی")) {
		t.Errorf("the name is not UTF-8 as is in the body: %s", r.body)
	}
	r = c.do("GET", "/v1/tenants/tehran-gold/products/1", nil)
	wantStatus(t, r, 200, "product")
	if m := r.json(t); m["name"] != "گردنبند طلا" || m["weight_g"] != 15.5 {
		t.Errorf("product %v", m)
	}
	r = c.do("GET", "/v1/tenants/tehran-gold/invoices/INV-2024-001", nil)
	wantStatus(t, r, 200, "invoice")
	if m := r.json(t); m["total"] != 150000.0 {
		t.Errorf("invoice %v", m)
	}
	wantStatus(t, c.do("GET", "/v1/tenants/tehran-gold/customers/999", nil), 404, "unknown customer")
	r = c.do("GET", "/v1/tenants/tehran-gold/customers/999", nil)
	wantStatus(t, r, 404, "unknown customer again")
	if got := r.header.Get("Cache-Status"); got != "karat; hit" {
		t.Errorf("a remembered not-found: Cache-Status %q, want a hit", got)
	}

	r = c.do("GET", "/v1/gold-price", nil)
	wantStatus(t, r, 200, "gold price")
	if m := r.json(t); m["usd_per_oz"] != 2075.5 {
		t.Errorf("gold price %v", m)
	}
	// Another shop's user shares the gold price entry.
	c2 := srv.client()
	c2.loginOK("shiraz-silver", "clerk@shiraz-silver.test")
	r = c2.do("GET", "/v1/gold-price", nil)
	if got := r.header.Get("Cache-Status"); got != "karat; hit" {
		t.Errorf("gold price from another tenant: Cache-Status %q, want a hit (shared)", got)
	}

	// An invoice changes the KPIs and invalidates them.
	r = c.do("POST", "/v1/tenants/tehran-gold/invoices", map[string]any{"customer_id": "1", "total": 1000, "items": []string{"1"}})
	wantStatus(t, r, 201, "create invoice")
	wantRateLimitHeaders(t, r, "create invoice", "invoice-create")
	id, _ := r.json(t)["id"].(string)
	if r.header.Get("Location") != "/v1/tenants/tehran-gold/invoices/"+id {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	r = c.do("GET", "/v1/tenants/tehran-gold/kpis", nil)
	if got := r.header.Get("Cache-Status"); got != "karat; fwd=miss; stored" {
		t.Errorf("kpis after an invoice: Cache-Status %q, want a miss", got)
	}
	if m := r.json(t); m["sales"] != 26000.0 {
		t.Errorf("kpis after an invoice of 1000: %v", m)
	}
	wantStatus(t, c.do("POST", "/v1/tenants/tehran-gold/invoices", map[string]any{"customer_id": "nobody", "total": 5}), 422, "invoice for an unknown customer")
	wantStatus(t, c.do("POST", "/v1/tenants/tehran-gold/invoices", `{"customer_id":`), 400, "malformed invoice")

	// Uploads: within the cap 201, beyond it 413 (with and without a
	// Content-Length).
	r = c.do("POST", "/v1/tenants/tehran-gold/uploads", bytes.Repeat([]byte("x"), 4096))
	wantStatus(t, r, 201, "upload at the cap")
	wantRateLimitHeaders(t, r, "upload", "upload")
	if m := r.json(t); m["bytes"] != 4096.0 {
		t.Errorf("upload %v", m)
	}
	wantStatus(t, c.do("POST", "/v1/tenants/tehran-gold/uploads", bytes.Repeat([]byte("x"), 4097)), 413, "upload over the cap")
	req, _ := http.NewRequest("POST", srv.base+"/v1/tenants/tehran-gold/uploads", &chunked{n: 10000})
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Errorf("chunked upload over the cap: %d, want 413", res.StatusCode)
	}

	// Logout: 204, cookie cleared, session gone.
	r = c.do("POST", "/v1/auth/logout", nil)
	wantStatus(t, r, 204, "logout")
	if sc := r.header.Get("Set-Cookie"); !strings.Contains(sc, "karat_session=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout Set-Cookie %q does not clear the cookie", sc)
	}
	wantStatus(t, c.do("GET", "/v1/sessions", nil), 401, "after logout")
}

// chunked is a body without a Content-Length.
type chunked struct{ n int }

func (c *chunked) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n)
	for i := range k {
		p[i] = 'y'
	}
	c.n -= k
	return k, nil
}

func authErrors(t *testing.T, srv *server) {
	c := srv.client()
	r := c.do("GET", "/v1/sessions", nil)
	wantStatus(t, r, 401, "no token")
	wantRateLimitHeaders(t, r, "401")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	for _, tok := range []string{"x", strings.Repeat("a", 64), strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("g", 64), strings.Repeat("a", 8000)} {
		c.bearer = tok
		wantStatus(t, c.do("GET", "/v1/sessions", nil), 401, fmt.Sprintf("bearer of %d chars", len(tok)))
	}
	c.bearer = ""
	c.header.Set("Authorization", "Basic Zm9vOmJhcg==")
	wantStatus(t, c.do("GET", "/v1/sessions", nil), 401, "Basic auth")
	c.header.Del("Authorization")

	wantStatus(t, c.login("tehran-gold", "owner@tehran-gold.test", "wrong"), 401, "wrong password")
	wantStatus(t, c.login("tehran-gold", "nobody@tehran-gold.test", testPassword), 401, "unknown email")
	wantStatus(t, c.login("shiraz-silver", "owner@tehran-gold.test", testPassword), 401, "wrong tenant")
	wantStatus(t, c.do("POST", "/v1/auth/login", `{"tenant":"tehran-gold"`), 400, "malformed JSON")
	wantStatus(t, c.do("POST", "/v1/auth/login", `{}`), 400, "missing fields")
	wantStatus(t, c.do("POST", "/v1/auth/login", map[string]string{"tenant": "t", "email": strings.Repeat("e", 5000), "password": "p"}), 400, "oversized email")
	// Hostile tenants and emails: refused as bad credentials or bad input,
	// never a panic or a 500.
	for _, tenant := range []string{"*", "{", "}", "a\nb", "\xff\xfe", "tehran-gold\u0000", strings.Repeat("t", 10<<10)} {
		r := c.login(tenant, "owner@tehran-gold.test\n*", testPassword)
		if r.status != 401 && r.status != 400 && r.status != 429 {
			t.Errorf("login with tenant %.20q: %d, want 401, 400 or 429 (the 6th failure)", tenant, r.status)
		}
	}
	wantStatus(t, c.do("POST", "/v1/auth/login", []byte("\xff\xfe{")), 415, "binary body")
	huge := `{"tenant":"` + strings.Repeat("z", 10<<20) + `"}`
	if r, err := c.try("POST", "/v1/auth/login", huge); err == nil && r.status != 413 {
		t.Errorf("10 MB login body: %d, want 413", r.status)
	}
	big := `{"tenant":"` + strings.Repeat("z", 100<<10) + `"}`
	wantStatus(t, c.do("POST", "/v1/auth/login", big), 413, "100 KiB login body")
	r = c.do("GET", "/v1/nothing-here", nil)
	wantStatus(t, r, 404, "unknown /v1 route")
	wantRateLimitHeaders(t, r, "404")
	r = c.do("DELETE", "/v1/auth/login", nil)
	wantStatus(t, r, 405, "wrong method")
	wantRateLimitHeaders(t, r, "405")
}

func tenantIsolation(t *testing.T, srv *server) {
	c := srv.client()
	c.loginOK("tehran-gold", "clerk@tehran-gold.test")
	for _, p := range []string{
		"/v1/tenants/shiraz-silver/kpis",
		"/v1/tenants/shiraz%2Dsilver/kpis",
		"/v1/tenants/%73hiraz-silver/customers/1",
		"/v1/tenants/SHIRAZ-SILVER/kpis",
		"/v1/tenants/tehran-gold%00/kpis",
		"/v1/tenants/tehran-gold%20/kpis",
		"/v1/tenants/%2A/kpis",
		"/v1/tenants/%7Btehran-gold%7D/kpis",
		"/v1/tenants/tehran-gold%2F..%2Fshiraz-silver/kpis",
		"/v1/tenants/shiraz-silver/invoices",
		"/v1/tenants/%FF%FE/kpis",
		"/v1/tenants/a%0Ab/kpis",
		"/v1/tenants/" + strings.Repeat("x", 10<<10) + "/kpis",
	} {
		method := "GET"
		if strings.HasSuffix(p, "/invoices") {
			method = "POST"
		}
		r := c.do(method, p, map[string]any{"customer_id": "1", "total": 1})
		if method == "GET" {
			r = c.do("GET", p, nil)
		}
		if r.status != 403 && r.status != 404 {
			t.Errorf("%s %s: %d, want 403", method, p, r.status)
		}
		if r.status == 200 || bytes.Contains(r.body, []byte("مریم")) || bytes.Contains(r.body, []byte("12000")) {
			t.Errorf("%s %s leaked the other shop's data: %s", method, p, r.body)
		}
	}
	wantStatus(t, c.do("GET", "/v1/tenants/shiraz-silver/kpis", nil), 403, "other shop")
	wantStatus(t, c.do("GET", "/v1/tenants/shiraz%2Dsilver/kpis", nil), 403, "other shop, encoded")
	wantStatus(t, c.do("GET", "/v1/tenants/%74ehran-gold/kpis", nil), 200, "own shop, encoded")
	// The other shop sees its own values, not the first one's cache.
	o := srv.client()
	o.loginOK("shiraz-silver", "owner@shiraz-silver.test")
	r := o.do("GET", "/v1/tenants/shiraz-silver/customers/1", nil)
	wantStatus(t, r, 200, "shiraz customer")
	if m := r.json(t); m["name"] != "مریم حسینی" {
		t.Errorf("shiraz customer %v", m)
	}
}

// sessionList returns the caller's sessions.
func (c *client) sessionList() []map[string]any {
	c.t.Helper()
	r := c.do("GET", "/v1/sessions", nil)
	wantStatus(c.t, r, 200, "list sessions")
	var out []map[string]any
	for _, s := range r.json(c.t)["sessions"].([]any) {
		out = append(out, s.(map[string]any))
	}
	return out
}

func sessionsRoutes(t *testing.T, srv *server) {
	// Two devices of one user, and another user.
	a, b, other := srv.client(), srv.client(), srv.client()
	a.userAgent, b.userAgent = "Mozilla/5.0 Firefox/140.0", "Mozilla/5.0 Chrome/150.0"
	ra := a.do("POST", "/v1/auth/login", map[string]string{"tenant": "shiraz-silver", "email": "owner@shiraz-silver.test", "password": testPassword, "device": "لپ\u200cتاپ فروشگاه"})
	wantStatus(t, ra, 200, "login with a Persian device label")
	tokB := b.loginOK("shiraz-silver", "owner@shiraz-silver.test")
	other.loginOK("shiraz-silver", "clerk@shiraz-silver.test")

	list := a.sessionList()
	if len(list) < 2 {
		t.Fatalf("a sees %d sessions, want at least 2", len(list))
	}
	var currents int
	var idB string
	for _, s := range list {
		for _, f := range []string{"id", "device", "user_agent", "ip", "created", "last_seen", "expires", "current"} {
			if _, ok := s[f]; !ok {
				t.Errorf("session lacks %q: %v", f, s)
			}
		}
		if s["current"] == true {
			currents++
		}
		if s["current"] == true && s["device"] != "لپ\u200cتاپ فروشگاه" {
			t.Errorf("the device label did not round-trip: %q", s["device"])
		}
		if s["user_agent"] == "Mozilla/5.0 Chrome/150.0" {
			idB = s["id"].(string)
		}
		if bytes.Contains([]byte(fmt.Sprint(s)), []byte(tokB)) {
			t.Errorf("a session listing holds a token")
		}
	}
	if currents != 1 || idB == "" {
		t.Fatalf("list: %d current, b's id %q: %v", currents, idB, list)
	}
	// Another user cannot revoke b's session: 404, and b still works.
	wantStatus(t, other.do("DELETE", "/v1/sessions/"+idB, nil), 404, "another user's session id")
	wantStatus(t, other.do("DELETE", "/v1/sessions/not-an-id", nil), 404, "a malformed id")
	wantStatus(t, b.do("GET", "/v1/sessions", nil), 200, "b after other's attempt")

	// Revoke-others from a: b's next request is 401.
	r := a.do("POST", "/v1/sessions/revoke-others", nil)
	wantStatus(t, r, 200, "revoke others")
	if n, _ := r.json(t)["revoked"].(float64); n < 1 {
		t.Errorf("revoked %v, want >= 1", r.json(t))
	}
	wantStatus(t, b.do("GET", "/v1/sessions", nil), 401, "b after revoke-others")
	if l := a.sessionList(); len(l) != 1 || l[0]["current"] != true {
		t.Errorf("a's list after revoke-others: %v", l)
	}
	wantStatus(t, other.do("GET", "/v1/sessions", nil), 200, "another user's session survives")

	// DELETE one's own other device.
	b.loginOK("shiraz-silver", "owner@shiraz-silver.test")
	for _, s := range a.sessionList() {
		if s["current"] != true {
			wantStatus(t, a.do("DELETE", "/v1/sessions/"+s["id"].(string), nil), 204, "delete own other session")
		}
	}
	wantStatus(t, b.do("GET", "/v1/sessions", nil), 401, "b after DELETE")
}

func loginRotates(t *testing.T, srv *server) {
	c := srv.client()
	tok1 := c.loginOK("tehran-gold", "clerk@tehran-gold.test")
	var id1 any
	for _, s := range c.sessionList() {
		if s["current"] == true {
			id1 = s["id"]
		}
	}
	// Logging in again with the cookie rotates that session.
	tok2 := c.loginOK("tehran-gold", "clerk@tehran-gold.test")
	if tok1 == tok2 {
		t.Fatal("a second login kept the token")
	}
	var ids []any
	for _, s := range c.sessionList() {
		if s["current"] == true {
			ids = append(ids, s["id"])
		}
	}
	if len(ids) != 1 || ids[0] != id1 {
		t.Errorf("after rotation the current session is %v, want the same id %v", ids, id1)
	}
	old := srv.client()
	old.bearer = tok1
	wantStatus(t, old.do("GET", "/v1/sessions", nil), 401, "the rotated-away token")
	// Bearer works as well as the cookie.
	nb := srv.client()
	nb.bearer = tok2
	wantStatus(t, nb.do("GET", "/v1/sessions", nil), 200, "bearer token")
}

// concurrentFailedLogins: 40 failed logins at once for one IP + email give
// exactly five 401s and 35 429s with Retry-After.
func concurrentFailedLogins(t *testing.T, srv *server) {
	// A successful login first: it clears the failures earlier subtests
	// left for this IP + email.
	srv.client().loginOK("tehran-gold", "owner@tehran-gold.test")
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	retryOK := true
	start := make(chan struct{})
	for range 40 {
		wg.Go(func() {
			c := srv.client()
			<-start
			r, err := c.try("POST", "/v1/auth/login", map[string]string{"tenant": "tehran-gold", "email": "owner@tehran-gold.test", "password": "guess"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			counts[r.status]++
			if r.status == 429 && !regexp.MustCompile(`^[1-9]\d*$`).MatchString(r.header.Get("Retry-After")) {
				retryOK = false
			}
		})
	}
	close(start)
	wg.Wait()
	if counts[401] != 5 || counts[429] != 35 {
		t.Fatalf("40 concurrent failed logins: %v, want exactly 5×401 and 35×429", counts)
	}
	if !retryOK {
		t.Errorf("a 429 without a whole-seconds Retry-After")
	}
	// The right password is refused too while the count is full.
	c := srv.client()
	r := c.login("tehran-gold", "owner@tehran-gold.test", testPassword)
	wantStatus(t, r, 429, "right password after 5 failures")
	wantRateLimitHeaders(t, r, "429", "login")
	// Another email from the same IP is not affected, and a successful
	// login uses no quota: its headers show the whole login limit left.
	c.loginOK("tehran-gold", "clerk@tehran-gold.test")
	r = c.login("tehran-gold", "clerk@tehran-gold.test", testPassword)
	if !strings.Contains(r.header.Get("RateLimit"), `"login";r=5;`) {
		t.Errorf("after a successful login RateLimit is %q, want login r=5", r.header.Get("RateLimit"))
	}
}

func passwordReset(t *testing.T, srv *server) {
	c := srv.client()
	for i, email := range []string{"owner@tehran-gold.test", "owner@tehran-gold.test", "owner@tehran-gold.test"} {
		r := c.do("POST", "/v1/auth/password-reset", map[string]string{"email": email})
		wantStatus(t, r, 202, fmt.Sprintf("reset %d", i+1))
		wantRateLimitHeaders(t, r, "reset", "password-reset")
	}
	r := c.do("POST", "/v1/auth/password-reset", map[string]string{"email": "owner@tehran-gold.test"})
	wantStatus(t, r, 429, "4th reset in an hour")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	wantStatus(t, c.do("POST", "/v1/auth/password-reset", map[string]string{"email": "nobody@nowhere.test"}), 202, "unknown email")
}

func invoiceLimit(t *testing.T, srv *server) {
	c := srv.client()
	c.loginOK("shiraz-silver", "clerk@shiraz-silver.test")
	for i := range 10 {
		wantStatus(t, c.do("POST", "/v1/tenants/shiraz-silver/invoices", map[string]any{"customer_id": "1", "total": 10}), 201, fmt.Sprintf("invoice %d", i+1))
	}
	r := c.do("POST", "/v1/tenants/shiraz-silver/invoices", map[string]any{"customer_id": "1", "total": 10})
	wantStatus(t, r, 429, "11th invoice in a minute")
	wantRateLimitHeaders(t, r, "invoice 429", "invoice-create")
}

func adminStats(t *testing.T, srv *server) {
	clerk := srv.client()
	clerk.loginOK("shiraz-silver", "clerk@shiraz-silver.test")
	wantStatus(t, clerk.do("GET", "/v1/admin/stats", nil), 403, "clerk on admin stats")
	owner := srv.client()
	owner.loginOK("shiraz-silver", "owner@shiraz-silver.test")
	r := owner.do("GET", "/v1/admin/stats", nil)
	wantStatus(t, r, 200, "owner on admin stats")
	m := r.json(t)
	for _, k := range []string{"sessions", "caches", "ratelimit", "store"} {
		if _, ok := m[k]; !ok {
			t.Errorf("admin stats lack %q: %s", k, r.body)
		}
	}
	st, _ := m["store"].(map[string]any)
	if h, _ := st["health"].(map[string]any); h["up"] != true {
		t.Errorf("admin stats: store health %v", st["health"])
	}
	if u, _ := st["usage"].(map[string]any); u == nil || u["Keys"].(float64) < 1 {
		t.Errorf("admin stats: store usage %v", st["usage"])
	}
	if live, _ := m["sessions"].(map[string]any)["Live"].(float64); live < 2 {
		t.Errorf("admin stats: %v live sessions, want >= 2", live)
	}
	mr := owner.do("GET", "/metrics", nil)
	for _, want := range []string{`karat_cache_requests_total{cache="kpis",result="hit"}`, `karat_ratelimit_decisions_total{decision="denied",policy="login"}`, "karat_sessions_live"} {
		if !bytes.Contains(mr.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// noSecretsAtRest dumps every key and value the server wrote and looks for
// any token it handed out (hex, upper-case hex, raw bytes, base64) and the
// password.
func noSecretsAtRest(t *testing.T, srv *server, tg target, prefix string) {
	for _, u := range [][2]string{{"tehran-gold", "clerk@tehran-gold.test"}, {"shiraz-silver", "owner@shiraz-silver.test"}, {"shiraz-silver", "clerk@shiraz-silver.test"}} {
		c := srv.client()
		c.loginOK(u[0], u[1])
		c.do("GET", "/v1/sessions", nil)
	}
	srv.mu.Lock()
	tokens := append([]string(nil), srv.tokens...)
	srv.mu.Unlock()
	rc := tg.client()
	defer rc.Close()
	ctx := context.Background()
	keys, err := scanAll(ctx, rc, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 {
		t.Fatalf("only %d keys under %q after a walkthrough", len(keys), prefix)
	}
	var dump bytes.Buffer
	for _, k := range keys {
		dump.WriteString(k + "\n")
		switch rc.Type(ctx, k).Val() {
		case "string":
			dump.WriteString(rc.Get(ctx, k).Val() + "\n")
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + "\n")
			}
		case "none":
		default:
			t.Errorf("key %q of type %s", k, rc.Type(ctx, k).Val())
		}
	}
	all := dump.Bytes()
	for _, tok := range tokens {
		raw, _ := hex.DecodeString(tok)
		for _, enc := range []string{tok, strings.ToUpper(tok), string(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), tok[:16]} {
			if bytes.Contains(all, []byte(enc)) {
				t.Fatalf("a token (or its part %q) is in the store", enc[:8])
			}
		}
	}
	if bytes.Contains(all, []byte(testPassword)) {
		t.Fatal("the password is in the store")
	}
	t.Logf("%d keys, %d bytes dumped: none of the %d tokens handed out, no password", len(keys), len(all), len(tokens))
}

// TestSpoofedForwardedFor: behind no trusted proxy, X-Forwarded-For and
// Forwarded are ignored: six failed logins with six different claimed
// addresses land in one bucket and the sixth is 429. Behind a trusted
// proxy (127.0.0.1), the header decides the bucket.
func TestSpoofedForwardedFor(t *testing.T) {
	tg := target{name: "memory", url: "memory://"}
	srv, _ := startOn(t, tg)
	c := srv.client()
	for i := range 6 {
		c.header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		c.header.Set("Forwarded", fmt.Sprintf("for=198.51.100.%d", i+1))
		r := c.login("tehran-gold", "owner@tehran-gold.test", "guess")
		want := 401
		if i == 5 {
			want = 429
		}
		wantStatus(t, r, want, fmt.Sprintf("spoofed attempt %d", i+1))
	}
	trusted, _ := startOn(t, tg, "--trusted-proxies", "127.0.0.1/32")
	c = trusted.client()
	for i := range 6 {
		c.header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		wantStatus(t, c.login("tehran-gold", "owner@tehran-gold.test", "guess"), 401, fmt.Sprintf("proxied attempt %d from its own address", i+1))
	}
}

// TestRevokeAcrossServers: two karat processes over one Redis (each driver),
// sharing the session secret and namespace, as two replicas behind a load
// balancer. A device on the second replica is logged out by revoke-others
// on the first within the session layer's staleness bound (1 s).
func TestRevokeAcrossServers(t *testing.T) {
	for _, tg := range targets(t)[1:] {
		t.Run(tg.name, func(t *testing.T) {
			one, prefix := startOn(t, tg)
			nsName := "karat-e2e:" + strings.TrimSuffix(strings.TrimPrefix(prefix, "karat-e2e:"), ":")
			two := startServer(t, nil, "--store", tg.url, "--namespace", nsName, "--demo", "--demo-password", testPassword,
				"--bcrypt-cost", "4", "--session-secret", "0123456789abcdef0123456789abcdef-e2e")
			a, b := one.client(), two.client()
			a.loginOK("tehran-gold", "owner@tehran-gold.test")
			b.loginOK("tehran-gold", "owner@tehran-gold.test")
			if n := len(b.sessionList()); n != 2 {
				t.Fatalf("the second replica lists %d sessions, want 2", n)
			}
			r := a.do("POST", "/v1/sessions/revoke-others", nil)
			wantStatus(t, r, 200, "revoke others on the first replica")
			start := time.Now()
			eventually(t, 1500*time.Millisecond, "the other replica refusing the revoked session", func() bool {
				return b.do("GET", "/v1/sessions", nil).status == 401
			})
			t.Logf("revocation seen by the other replica after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}
