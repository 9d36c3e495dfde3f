package securitytest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/karatproc"
	"github.com/karat-go/karat/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// client is one browser: a cookie jar and, optionally, a bearer token and
// headers of its own.
type client struct {
	t      *testing.T
	base   string
	hc     *http.Client
	bearer string
	header http.Header
}

func newClient(t *testing.T, srv *karatproc.Server) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: srv.Base, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second}, header: http.Header{}}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (c *client) do(method, path string, body any) *resp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		c.t.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// login signs in and returns the token and the session cookie's value.
func (c *client) login(tenant, email, password string) (*resp, string, string) {
	c.t.Helper()
	r := c.do("POST", "/v1/auth/login", map[string]string{"tenant": tenant, "email": email, "password": password})
	var out struct{ Token string }
	_ = json.Unmarshal(r.body, &out)
	cookie := ""
	for _, line := range r.header.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(line, "karat_session="); ok {
			cookie, _, _ = strings.Cut(v, ";")
		}
	}
	return r, out.Token, cookie
}

// dump returns every key and value of the server: strings, hashes (field
// and value), lists, sets and sorted sets, as text to search.
func dump(t *testing.T, addr string) map[string]string {
	t.Helper()
	out := map[string]string{}
	cursor := "0"
	for {
		r, err := redistest.Do(addr, "SCAN", cursor, "COUNT", "1000")
		a, _ := r.([]any)
		if err != nil || len(a) != 2 {
			t.Fatalf("SCAN: %v %v", r, err)
		}
		keys, _ := a[1].([]any)
		for _, k := range keys {
			key := k.(string)
			typ, _ := redistest.Do(addr, "TYPE", key)
			var v any
			switch typ {
			case "string":
				v, err = redistest.Do(addr, "GET", key)
			case "hash":
				v, err = redistest.Do(addr, "HGETALL", key)
			case "list":
				v, err = redistest.Do(addr, "LRANGE", key, "0", "-1")
			case "set":
				v, err = redistest.Do(addr, "SMEMBERS", key)
			case "zset":
				v, err = redistest.Do(addr, "ZRANGE", key, "0", "-1", "WITHSCORES")
			case "none":
				continue // expired meanwhile
			default:
				t.Fatalf("key %q of unexpected type %v", key, typ)
			}
			if err != nil {
				t.Fatalf("reading %q: %v", key, err)
			}
			out[key] = fmt.Sprint(v)
		}
		cursor = a[0].(string)
		if cursor == "0" {
			return out
		}
	}
}

// needles are the spellings of a token an implementation might store.
func needles(token string) []string {
	raw, err := hex.DecodeString(token)
	if err != nil {
		return []string{token}
	}
	return []string{token, strings.ToUpper(token), string(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString([]byte(token))}
}

var users = [][2]string{
	{"tehran-gold", "owner@tehran-gold.test"}, {"tehran-gold", "clerk@tehran-gold.test"},
	{"shiraz-silver", "owner@shiraz-silver.test"}, {"shiraz-silver", "clerk@shiraz-silver.test"},
}

// TestSecretsAtRest walks the whole API on a real Redis (both drivers):
// every user logs in (twice, the second rotating the first), fails a login,
// asks for a password reset, lists, revokes and revokes others, reads and
// writes every tenant route, uploads, reads the gold price and the admin
// stats, logs out. Then it reads every key and value karat wrote and finds
// no token (in any common encoding), no cookie value, no password and no
// password hash; and every key is under karat's namespace.
func TestSecretsAtRest(t *testing.T) {
	for _, drv := range []string{"rueidis", "goredis"} {
		t.Run(drv, func(t *testing.T) {
			redis := redistest.NewKillable(t, redistest.NoPersistence)
			srv := karatproc.Start(t, redis.URL+"?driver="+drv)
			var secrets []string
			wrong := "wrong-password-Qx7"
			secrets = append(secrets, karatproc.DemoPassword, wrong, karatproc.SessionSecret, "$2a$", "$2b$", "$2y$", "$argon2")
			for _, u := range users {
				c := newClient(t, srv)
				if r, _, _ := c.login(u[0], u[1], wrong); r.status != http.StatusUnauthorized {
					t.Fatalf("wrong password: %d", r.status)
				}
				r, tok1, ck1 := c.login(u[0], u[1], karatproc.DemoPassword)
				if r.status != http.StatusOK || tok1 == "" || ck1 == "" {
					t.Fatalf("login %s: %d %s", u[1], r.status, r.body)
				}
				_, tok2, ck2 := c.login(u[0], u[1], karatproc.DemoPassword) // rotates (cookie sent)
				if tok2 == tok1 {
					t.Fatal("a login with a session cookie kept the token: no rotation")
				}
				other := newClient(t, srv)
				_, tok3, ck3 := other.login(u[0], u[1], karatproc.DemoPassword)
				secrets = append(secrets, ck1, ck2, ck3)
				for _, tok := range []string{tok1, tok2, tok3} {
					secrets = append(secrets, needles(tok)...)
				}
				c.do("POST", "/v1/auth/password-reset", map[string]string{"email": u[1]})
				c.do("GET", "/v1/sessions", nil)
				base := "/v1/tenants/" + u[0]
				for _, p := range []string{"/kpis", "/customers/1", "/products/1", "/invoices/INV-2024-001"} {
					if r := c.do("GET", base+p, nil); r.status != http.StatusOK {
						t.Errorf("GET %s: %d %s", base+p, r.status, r.body)
					}
				}
				if r := c.do("POST", base+"/invoices", map[string]any{"customer_id": "1", "total": 5000, "items": []string{"ring"}}); r.status != http.StatusCreated {
					t.Errorf("create invoice: %d %s", r.status, r.body)
				}
				c.do("POST", base+"/uploads", []byte("a receipt"))
				c.do("GET", "/v1/gold-price", nil)
				c.do("GET", "/v1/admin/stats", nil)
				if r := c.do("POST", "/v1/sessions/revoke-others", nil); r.status != http.StatusOK {
					t.Errorf("revoke-others: %d %s", r.status, r.body)
				}
				if r := other.do("GET", "/v1/sessions", nil); r.status != http.StatusUnauthorized {
					t.Errorf("a session revoked by revoke-others answered %d", r.status)
				}
				if r := c.do("POST", "/v1/auth/logout", nil); r.status != http.StatusNoContent {
					t.Errorf("logout: %d", r.status)
				}
			}
			keys := dump(t, redis.Addr)
			if len(keys) == 0 {
				t.Fatal("karat wrote nothing to Redis: the walkthrough did not reach it")
			}
			for k, v := range keys {
				if !strings.HasPrefix(k, "karat:") {
					t.Errorf("key %q outside karat's namespace", k)
				}
				for _, s := range secrets {
					if s != "" && (strings.Contains(k, s) || strings.Contains(v, s)) {
						t.Errorf("a secret (%d bytes, starting %q) is stored under key %q", len(s), s[:min(4, len(s))], k)
					}
				}
			}
			t.Logf("figure: %d keys dumped after the walkthrough, %d secret spellings searched, none found", len(keys), len(secrets))
			if log := srv.Log(); containsAny(log, secrets) {
				t.Errorf("a secret reached karat's log")
			}
		})
	}
}

func containsAny(s string, needles []string) bool {
	for _, n := range needles {
		if n != "" && !strings.HasPrefix(n, "$") && strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// TestSessionFixation: a token the client chose, or one an attacker planted
// in the victim's browser, is never adopted by a login.
func TestSessionFixation(t *testing.T) {
	redis := redistest.NewKillable(t, redistest.NoPersistence)
	srv := karatproc.Start(t, redis.URL)
	u, _ := url.Parse(srv.Base)

	// 1. A token of the client's choosing, as a cookie and as a bearer.
	chosen := make([]byte, 32)
	_, _ = rand.Read(chosen)
	fixed := hex.EncodeToString(chosen)
	victim := newClient(t, srv)
	victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "karat_session", Value: fixed, Path: "/"}})
	victim.bearer = fixed
	r, tok, ck := victim.login(users[0][0], users[0][1], karatproc.DemoPassword)
	if r.status != http.StatusOK || tok == fixed || ck == fixed || tok == "" {
		t.Fatalf("login with a chosen token: %d, token adopted: %v", r.status, tok == fixed || ck == fixed)
	}
	probe := newClient(t, srv)
	probe.bearer = fixed
	if r := probe.do("GET", "/v1/sessions", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the client-chosen token is valid after the login: %d", r.status)
	}

	// 2. An attacker's real session planted in the victim's browser: the
	// victim's login (another user) ends it and starts a new one.
	attacker := newClient(t, srv)
	_, planted, _ := attacker.login(users[1][0], users[1][1], karatproc.DemoPassword)
	victim2 := newClient(t, srv)
	victim2.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "karat_session", Value: planted, Path: "/"}})
	r, tok2, _ := victim2.login(users[0][0], users[0][1], karatproc.DemoPassword)
	if r.status != http.StatusOK || tok2 == planted {
		t.Fatalf("login over a planted session: %d, adopted %v", r.status, tok2 == planted)
	}
	probe.bearer = planted
	if r := probe.do("GET", "/v1/sessions", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the planted session is still valid after the victim's login: %d", r.status)
	}

	// 3. The same user's earlier session is rotated: the old token ends.
	c := newClient(t, srv)
	_, old, _ := c.login(users[2][0], users[2][1], karatproc.DemoPassword)
	_, rotated, _ := c.login(users[2][0], users[2][1], karatproc.DemoPassword)
	probe.bearer = old
	if rotated == old {
		t.Fatal("a second login kept the token")
	}
	if r := probe.do("GET", "/v1/sessions", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the token before a login still works: %d", r.status)
	}
}

// hostile are tenant ids and path segments an attacker might send.
var hostile = []string{"*", "{", "}", "{tehran-gold}", "\n", "tehran-gold\n", "\xff\xfe", "tehran-gold\x00", "../shiraz-silver",
	"TEHRAN-GOLD", "tehran-gold ", "shiraz-silver", "%2e%2e", strings.Repeat("t", 10<<10), "karat:session", "ال*"}

// TestHostileTenants: hostile tenant ids at login are refused (4xx), and
// a logged-in user reaches no other tenant however the path is spelled;
// every key written stays under karat's namespace.
func TestHostileTenants(t *testing.T) {
	redis := redistest.NewKillable(t, redistest.NoPersistence)
	srv := karatproc.Start(t, redis.URL)
	for _, h := range hostile {
		c := newClient(t, srv)
		r, _, _ := c.login(h, "hostile@evil.test", karatproc.DemoPassword)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("login with tenant %q: %d", h[:min(len(h), 20)], r.status)
		}
	}
	c := newClient(t, srv)
	if r, _, _ := c.login(users[0][0], users[0][1], karatproc.DemoPassword); r.status != http.StatusOK {
		t.Fatalf("login: %d", r.status)
	}
	paths := []string{"/v1/tenants/shiraz-silver/kpis", "/v1/tenants/%73hiraz-silver/kpis", "/v1/tenants/SHIRAZ-SILVER/kpis",
		"/v1/tenants/tehran-gold%2F..%2Fshiraz-silver/kpis", "/v1/tenants/tehran-gold/../shiraz-silver/kpis",
		"/v1/tenants/shiraz-silver%00/kpis", "/v1/tenants/%2A/kpis", "/v1/tenants/%7B/kpis"}
	for _, h := range hostile {
		paths = append(paths, "/v1/tenants/"+url.PathEscape(h)+"/customers/1")
	}
	for _, p := range paths {
		r := c.do("GET", p, nil)
		if r.status == http.StatusOK && !strings.HasPrefix(p, "/v1/tenants/tehran-gold/") {
			t.Errorf("GET %s: 200 for another tenant: %s", p[:min(len(p), 60)], r.body)
		}
		if r.status == http.StatusOK && strings.Contains(string(r.body), "مریم") {
			t.Errorf("GET %s: shiraz-silver's customer leaked", p[:min(len(p), 60)])
		}
	}
	for k := range dump(t, redis.Addr) {
		if !strings.HasPrefix(k, "karat:") {
			t.Errorf("key %q outside karat's namespace", k)
		}
	}
}

// TestSpoofedClientIP: without trusted proxies, X-Forwarded-For and
// Forwarded are ignored, so a brute force that changes them every attempt
// is still limited: exactly five 401s, then 429. With 127.0.0.1 trusted,
// the client is the rightmost untrusted hop, so forged entries to its left
// change nothing either.
func TestSpoofedClientIP(t *testing.T) {
	redis := redistest.NewKillable(t, redistest.NoPersistence)
	for _, trusted := range []bool{false, true} {
		var args []string
		if trusted {
			args = []string{"--trusted-proxies", "127.0.0.1/32"}
		}
		srv := karatproc.Start(t, redis.URL, append(args, "--namespace", fmt.Sprintf("karat:spoof%v", trusted))...)
		for _, header := range []string{"X-Forwarded-For", "Forwarded"} {
			c := newClient(t, srv)
			var got []int
			for i := range 8 {
				forged := fmt.Sprintf("203.0.113.%d", i+1)
				switch {
				case header == "X-Forwarded-For" && trusted:
					forged += ", 198.51.100.77" // the hop our proxy saw
				case header == "Forwarded" && trusted:
					forged = "for=" + forged + ", for=198.51.100.78"
				case header == "Forwarded":
					forged = "for=" + forged
				}
				c.header.Set(header, forged)
				r, _, _ := c.login("tehran-gold", map[string]string{"X-Forwarded-For": "owner@tehran-gold.test", "Forwarded": "clerk@tehran-gold.test"}[header], "not the password")
				got = append(got, r.status)
			}
			want := []int{401, 401, 401, 401, 401, 429, 429, 429}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("trusted proxies %v, %s forged on every attempt: statuses %v, want %v", trusted, header, got, want)
			}
		}
	}
}

// TestOversizedInput: bodies beyond the cap (announced or streamed),
// headers beyond the server's limit and JSON nested beyond reason are
// refused with 4xx, quickly, and the server's memory does not balloon.
func TestOversizedInput(t *testing.T) {
	redis := redistest.NewKillable(t, redistest.NoPersistence)
	srv := karatproc.Start(t, redis.URL)
	c := newClient(t, srv)
	if r, _, _ := c.login(users[0][0], users[0][1], karatproc.DemoPassword); r.status != http.StatusOK {
		t.Fatalf("login: %d", r.status)
	}
	rssBefore := srv.RSSKB(t)
	big := bytes.Repeat([]byte("a"), 10<<20)
	bigJSON := append(append([]byte(`{"email":"`), big...), '"', '}')
	type attempt struct {
		name string
		send func() int
		want []int
	}
	post := func(path string, body io.Reader, length int64, hdr http.Header) int {
		req, _ := http.NewRequest("POST", srv.Base+path, body)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := c.hc.Do(req)
		if err != nil {
			return -1 // the server may close on a request it refuses early
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode
	}
	attempts := []attempt{
		{"10 MB JSON body with Content-Length", func() int {
			return post("/v1/auth/password-reset", bytes.NewReader(bigJSON), int64(len(bigJSON)), nil)
		}, []int{413}},
		{"10 MB JSON body streamed (no Content-Length)", func() int {
			return post("/v1/auth/password-reset", io.MultiReader(bytes.NewReader(bigJSON)), -1, nil)
		}, []int{413}},
		{"10 MB upload", func() int {
			return post("/v1/tenants/tehran-gold/uploads", bytes.NewReader(big), int64(len(big)), nil)
		}, []int{413}},
		{"JSON nested 60,000 deep", func() int {
			b := strings.Repeat("[", 30000) + strings.Repeat("]", 30000)
			return post("/v1/auth/login", strings.NewReader(b), int64(len(b)), nil)
		}, []int{400}},
		{"JSON object nested 20,000 deep", func() int {
			b := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
			return post("/v1/auth/login", strings.NewReader(b), int64(len(b)), nil)
		}, []int{400, 413}},
		{"2 MB header", func() int {
			return post("/v1/auth/login", strings.NewReader("{}"), 2, http.Header{"X-Big": {strings.Repeat("h", 2<<20)}})
		}, []int{431, -1}},
		{"10,000 headers", func() int {
			h := http.Header{}
			for i := range 10000 {
				h.Set(fmt.Sprint("X-H", i), "v")
			}
			return post("/v1/auth/login", strings.NewReader("{}"), 2, h)
		}, []int{431, -1}},
		{"10 KB email", func() int {
			b, _ := json.Marshal(map[string]string{"tenant": "tehran-gold", "email": strings.Repeat("e", 10<<10), "password": "x"})
			return post("/v1/auth/login", bytes.NewReader(b), int64(len(b)), nil)
		}, []int{400}},
	}
	for _, a := range attempts {
		for range 5 {
			start := time.Now()
			got := a.send()
			took := time.Since(start)
			ok := false
			for _, w := range a.want {
				ok = ok || got == w
			}
			if !ok {
				t.Errorf("%s: status %d, want one of %v", a.name, got, a.want)
			}
			if took > 10*time.Second {
				t.Errorf("%s: took %v", a.name, took)
			}
		}
	}
	// The server still serves, and its memory did not grow with the input.
	if r := c.do("GET", "/v1/sessions", nil); r.status != http.StatusOK {
		t.Errorf("after the oversized input: %d", r.status)
	}
	rssAfter := srv.RSSKB(t)
	if rssAfter > rssBefore+64<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB over the oversized requests", rssBefore, rssAfter)
	}
	t.Logf("figure: oversized input (10 MB bodies ×15, deep JSON ×10, 2 MB headers ×5, 10,000 headers ×5): RSS %d KiB before, %d KiB after", rssBefore, rssAfter)
}
