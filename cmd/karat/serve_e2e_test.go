package main

import (
	"github.com/karat-go/karat/internal/redistest"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServeBadStart: a bad flag, a bad env twin, a bad URL or an unreachable
// store is one line on stderr and a non-zero exit, and never echoes a
// password from the URL.
func TestServeBadStart(t *testing.T) {
	bin := karatBinary(t)
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, []string{"--bogus"}, 2, "flag provided but not defined"},
		{"bad log format", nil, []string{"--log-format", "xml"}, 2, "--log-format"},
		{"bad env twin", []string{"KARAT_DEMO=maybe"}, nil, 2, "KARAT_DEMO"},
		{"bad CIDR", nil, []string{"--trusted-proxies", "10.0.0.0/99"}, 2, "not a CIDR"},
		{"short secret", nil, []string{"--session-secret", "short"}, 2, "at least 32 bytes"},
		{"bad url", nil, []string{"--store", "redis://:hunter2hunter2@127.0.0.1:1?nope=1"}, 2, "unknown parameter"},
		{"unknown scheme", []string{"KARAT_STORE_URL=mongodb://x"}, nil, 2, "unknown scheme"},
		{"unreachable", nil, []string{"--store", "redis://:hunter2hunter2@127.0.0.1:1"}, 1, "cannot open the store"},
		{"unreachable goredis", nil, []string{"--store", "redis://127.0.0.1:1?driver=goredis"}, 1, "cannot open the store"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)...)
			cmd.Env = append(cleanEnv(), c.env...)
			var stderr logBuf
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running after 20s; stderr: %s", stderr.String())
			}
			out := stderr.String()
			if got := cmd.ProcessState.ExitCode(); got != c.code {
				t.Errorf("exit %d, want %d; stderr: %s", got, c.code, out)
			}
			if n := strings.Count(strings.TrimRight(out, "\n"), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("stderr %q does not say %q", out, c.want)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("stderr shows the URL's password: %q", out)
			}
		})
	}
}

// TestServeSIGTERM: SIGTERM lets an in-flight request finish, logs each
// shutdown step and exits 0.
func TestServeSIGTERM(t *testing.T) {
	srv := startServer(t, nil, "--demo-password", testPassword, "--data-delay", "1500ms", "--bcrypt-cost", "4")
	c := srv.client()
	wantStatus(t, c.do("GET", "/healthz", nil), http.StatusOK, "healthz")
	c.loginOK("tehran-gold", "owner@tehran-gold.test")

	// A slow request (a KPI load of 1.5 s) in flight when the signal comes:
	// it must complete with its answer.
	slow := make(chan *resp, 1)
	go func() {
		r, err := c.try("GET", "/v1/tenants/tehran-gold/kpis", nil)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
		slow <- r
	}()
	// Wait until the request is in flight: the in-flight gauge counts it
	// and the /metrics request that reads it.
	eventually(t, 10*time.Second, "the slow request in flight", func() bool {
		r, err := srv.client().try("GET", "/metrics", nil)
		return err == nil && strings.Contains(string(r.body), "karat_http_requests_in_flight 2")
	})
	if code := srv.stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, srv.stderr.String())
	}
	if r := <-slow; r == nil || r.status != http.StatusOK {
		t.Errorf("the in-flight request did not complete with 200 during shutdown: %+v", r)
	}
	for _, step := range []string{"shutdown: signal received", "shutdown: in-flight requests finished", "shutdown: store closed", "shutdown: complete"} {
		if !strings.Contains(srv.stderr.String(), step) {
			t.Errorf("no %q log line", step)
		}
	}
}

// TestServeHealthAndMetrics: /healthz, /readyz with the ping latency and
// /metrics on the memory store.
func TestServeHealthAndMetrics(t *testing.T) {
	srv := startServer(t, nil, "--demo-password", testPassword)
	c := srv.client()
	wantStatus(t, c.do("GET", "/healthz", nil), http.StatusOK, "healthz")
	r := c.do("GET", "/readyz", nil)
	wantStatus(t, r, http.StatusOK, "readyz")
	st := r.json(t)["store"].(map[string]any)
	if up, _ := st["up"].(bool); !up {
		t.Fatalf("readyz store: %v", st)
	}
	if _, ok := st["ping_ms"].(float64); !ok {
		t.Fatalf("readyz has no ping_ms: %s", r.body)
	}
	m := c.do("GET", "/metrics", nil)
	wantStatus(t, m, http.StatusOK, "metrics")
	for _, name := range []string{
		`karat_http_requests_total{code="200",method="GET",route="/readyz"} 1`,
		"karat_http_request_duration_seconds_bucket",
		"karat_store_ping_seconds",
		"karat_store_up 1",
	} {
		if !strings.Contains(string(m.body), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	// The API policy's preset: 100 requests per 15 minutes per client.
	r = c.do("GET", "/v1/sessions", nil)
	wantStatus(t, r, http.StatusUnauthorized, "no session")
	if got := r.header.Get("RateLimit-Policy"); !strings.HasPrefix(got, `"api";q=100;w=900;pk=:`) {
		t.Errorf("RateLimit-Policy %q, want the api preset 100 per 900 s", got)
	}
	wantStatus(t, c.do("GET", "/no/such/route", nil), http.StatusNotFound, "unknown route")
	wantStatus(t, c.do("DELETE", "/healthz", nil), http.StatusMethodNotAllowed, "wrong method")
}

// TestServeDemoPasswordGenerated: without --demo-password the password is
// generated, printed once, works, and appears in no log line.
func TestServeDemoPasswordGenerated(t *testing.T) {
	srv := startServer(t, nil)
	out := srv.stderr.String()
	const marker = "demo users' password (generated, shown once): "
	i := strings.Index(out, marker)
	if i < 0 {
		t.Fatalf("no generated password printed:\n%s", out)
	}
	pw := strings.Fields(out[i+len(marker):])[0]
	if strings.Count(out, pw) != 1 {
		t.Fatalf("the password appears %d times on stderr", strings.Count(out, pw))
	}
	c := srv.client()
	r := c.do("POST", "/v1/auth/login", map[string]string{"tenant": "shiraz-silver", "email": "clerk@shiraz-silver.test", "password": pw})
	wantStatus(t, r, http.StatusOK, "login with the generated password")
	c.do("GET", "/v1/sessions", nil)
	srv.stop()
	if strings.Count(srv.stderr.String(), pw) != 1 {
		t.Fatalf("the password reached a log line")
	}
}

// TestServeReadyzStoreDown: /readyz goes 503 (within a second) when the
// Redis server is killed and 200 again, by itself, when it is restarted on
// the same port; both transitions are logged, the recovery with its
// duration. Both drivers.
func TestServeReadyzStoreDown(t *testing.T) {
	for _, driver := range []string{"rueidis", "goredis"} {
		t.Run(driver, func(t *testing.T) {
			rp := startRedis(t)
			srv := startServer(t, nil, "--store", rp.url()+"?driver="+driver, "--demo", "--demo-password", testPassword, "--bcrypt-cost", "4")
			c := srv.client()
			wantStatus(t, c.do("GET", "/readyz", nil), http.StatusOK, "readyz before")
			rp.kill()
			start := time.Now()
			r := c.do("GET", "/readyz", nil)
			if el := time.Since(start); el > time.Second {
				t.Errorf("readyz took %v with the store down, want < 1s", el)
			}
			wantStatus(t, r, http.StatusServiceUnavailable, "readyz with Redis killed")
			// A route that needs the store: 503 fast, never a hang or a 500.
			start = time.Now()
			r = c.do("POST", "/v1/auth/login", map[string]string{"tenant": "tehran-gold", "email": "owner@tehran-gold.test", "password": testPassword})
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("login took %v with the store down", el)
			}
			wantStatus(t, r, http.StatusServiceUnavailable, "login with Redis killed (fails closed)")
			eventually(t, 5*time.Second, "store loss logged", func() bool { return len(srv.stderr.lines("store unreachable; the driver keeps reconnecting")) > 0 })

			rp.start()
			eventually(t, 20*time.Second, "readyz back to 200", func() bool {
				r, err := c.try("GET", "/readyz", nil)
				return err == nil && r.status == http.StatusOK
			})
			eventually(t, 5*time.Second, "recovery logged", func() bool {
				l := srv.stderr.lines("store reachable again")
				return len(l) > 0 && l[0]["down_for"] != ""
			})
			r = c.do("POST", "/v1/auth/login", map[string]string{"tenant": "tehran-gold", "email": "owner@tehran-gold.test", "password": testPassword})
			wantStatus(t, r, http.StatusOK, "login after recovery")
		})
	}
}

// TestServeStoreStalled: a store that stops answering (a silent network
// partition: a proxy that holds every byte) makes /readyz 503 within a
// second, login 503 fast (it fails closed), and no route hang or 500;
// everything is back once the proxy forwards again. Both drivers.
func TestServeStoreStalled(t *testing.T) {
	for _, driver := range []string{"rueidis", "goredis"} {
		t.Run(driver, func(t *testing.T) {
			srvRedis := redistest.Single(t)
			proxy := redistest.NewProxy(t, srvRedis.Addr)
			srv, _ := startOn(t, target{name: driver, url: "redis://" + proxy.Addr + "?driver=" + driver, redis: srvRedis.Addr})
			c := srv.client()
			c.loginOK("tehran-gold", "owner@tehran-gold.test")
			wantStatus(t, c.do("GET", "/v1/tenants/tehran-gold/kpis", nil), http.StatusOK, "kpis before the stall")

			proxy.Stall()
			timed := func(method, path string, body any) (*resp, time.Duration) {
				start := time.Now()
				r := c.do(method, path, body)
				return r, time.Since(start)
			}
			r, el := timed("GET", "/readyz", nil)
			wantStatus(t, r, http.StatusServiceUnavailable, "readyz with the store stalled")
			if el > time.Second {
				t.Errorf("readyz took %v with the store stalled, want < 1s", el)
			}
			r, el = timed("POST", "/v1/auth/login", map[string]string{"tenant": "tehran-gold", "email": "clerk@tehran-gold.test", "password": testPassword})
			wantStatus(t, r, http.StatusServiceUnavailable, "login with the store stalled (fails closed)")
			// The code bounds it at 500 ms (two 250 ms decisions); the test
			// allows for a loaded machine.
			if el > 2*time.Second {
				t.Errorf("login took %v with the store stalled", el)
			}
			t.Logf("login with the store stalled: %d in %v", r.status, el.Round(time.Millisecond))
			for _, p := range []string{"/v1/sessions", "/v1/tenants/tehran-gold/customers/1", "/v1/tenants/tehran-gold/kpis"} {
				r, el = timed("GET", p, nil)
				if r.status != http.StatusServiceUnavailable && r.status != http.StatusOK {
					t.Errorf("%s with the store stalled: %d, want 503 (or 200 from a bounded cache)", p, r.status)
				}
				if el > 2*time.Second {
					t.Errorf("%s took %v with the store stalled", p, el)
				}
				t.Logf("%s with the store stalled: %d in %v", p, r.status, el.Round(time.Millisecond))
			}
			proxy.Resume()
			eventually(t, 20*time.Second, "readyz back after the stall", func() bool {
				r, err := c.try("GET", "/readyz", nil)
				return err == nil && r.status == http.StatusOK
			})
			eventually(t, 10*time.Second, "login back after the stall", func() bool {
				r, err := c.try("POST", "/v1/auth/login", map[string]string{"tenant": "tehran-gold", "email": "clerk@tehran-gold.test", "password": testPassword})
				return err == nil && r.status == http.StatusOK
			})
		})
	}
}

// TestServeCookieAttributes: the session cookie is HttpOnly, SameSite=Lax,
// Path=/, and Secure with --secure-cookies (KARAT_SECURE_COOKIES).
func TestServeCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		var env []string
		if secure {
			env = []string{"KARAT_SECURE_COOKIES=true"}
		}
		srv := startServer(t, env, "--demo-password", testPassword, "--bcrypt-cost", "4")
		r := srv.client().login("tehran-gold", "owner@tehran-gold.test", testPassword)
		wantStatus(t, r, http.StatusOK, "login")
		sc := r.header.Get("Set-Cookie")
		for _, attr := range []string{"karat_session=", "Path=/", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(sc, attr) {
				t.Errorf("Set-Cookie %q lacks %s", sc, attr)
			}
		}
		if strings.Contains(sc, "Secure") != secure {
			t.Errorf("secure=%v: Set-Cookie %q", secure, sc)
		}
		srv.stop()
	}
}
