package faulttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/karatproc"
	"github.com/karat-go/karat/internal/redistest"
)

// serveLimits are the rate-limit policies every `karat serve` of these
// tests runs with: quotas no test reaches, and the presets' fail modes (the
// API fails open, logins closed, invoices to a local limiter).
const serveLimits = "api 1000000/1h fail=open; invoice-create 1000000/1h fail=local"

// startServe runs `karat serve` over storeURL on driver drv.
func startServe(t *testing.T, storeURL, drv string) *karatproc.Server {
	t.Helper()
	return karatproc.Start(t, withDriver(storeURL, drv), "--rate-limits", serveLimits)
}

// serveClient sends requests to one `karat serve` over a transport of its
// own, which close shuts, so that a leak check can count goroutines after.
type serveClient struct {
	base string
	tr   *http.Transport
	hc   *http.Client
}

func newServeClient(srv *karatproc.Server) *serveClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	return &serveClient{base: srv.Base, tr: tr, hc: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
}

func (c *serveClient) close() { c.tr.CloseIdleConnections() }

func (c *serveClient) get(path, token string) (*karatproc.Reply, error) {
	return karatproc.Call(c.hc, c.base, "GET", path, "", token, nil)
}

// The demo user every test signs in as, unless it says otherwise.
const (
	demoTenant = "tehran-gold"
	demoOwner  = "owner@tehran-gold.test"
	demoClerk  = "clerk@tehran-gold.test"
)

// login signs email of tenant in with the demo password and returns the
// status, the token and the session's id (both empty unless 200).
func (c *serveClient) login(tenant, email string) (status int, token, id string, err error) {
	r, err := karatproc.Call(c.hc, c.base, "POST", "/v1/auth/login", "", "", map[string]string{
		"tenant": tenant, "email": email, "password": karatproc.DemoPassword})
	if err != nil {
		return 0, "", "", err
	}
	var out struct {
		Token   string
		Session struct{ ID string }
	}
	_ = json.Unmarshal(r.Body, &out)
	return r.Status, out.Token, out.Session.ID, nil
}

// mustLogin signs the demo owner in and fails the test unless it is 200.
func (c *serveClient) mustLogin(t *testing.T, tenant, email string) (token, id string) {
	t.Helper()
	status, token, id, err := c.login(tenant, email)
	if err != nil || status != http.StatusOK {
		t.Fatalf("login of %s: %d %v", email, status, err)
	}
	return token, id
}

// served reports whether a fresh login, the device list with its token (a
// session validation) and the shop's KPIs (a cache read) all answer 200.
func (c *serveClient) served() bool {
	status, tok, _, err := c.login(demoTenant, demoOwner)
	if err != nil || status != http.StatusOK {
		return false
	}
	for _, path := range []string{"/v1/sessions", "/v1/tenants/" + demoTenant + "/kpis"} {
		if r, err := c.get(path, tok); err != nil || r.Status != http.StatusOK {
			return false
		}
	}
	return true
}

// ready reports whether /readyz answers 200.
func (c *serveClient) ready() bool {
	r, err := c.get("/readyz", "")
	return err == nil && r.Status == http.StatusOK
}

// waitNotReady polls /readyz until it answers 503 and returns how long
// after since that was; it fails the test after limit.
func (c *serveClient) waitNotReady(t *testing.T, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		r, err := c.get("/readyz", "")
		if err == nil && r.Status == http.StatusServiceUnavailable {
			return time.Since(since)
		}
		if time.Since(since) > limit {
			t.Fatalf("/readyz still %v %v %v after the fault", r, err, time.Since(since))
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
}

// waitBack polls from back until /readyz answers 200 and a login, a
// session validation and a KPI read succeed (served), and returns when
// each first did, measured from back; it fails the test after 10 s.
func (c *serveClient) waitBack(t *testing.T, back time.Time) (readyAt, serviceAt time.Duration) {
	t.Helper()
	for readyAt == 0 || serviceAt == 0 {
		if readyAt == 0 && c.ready() {
			readyAt = time.Since(back)
		}
		if serviceAt == 0 && c.served() {
			serviceAt = time.Since(back)
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("not back 10 s after the server's return: readyz %v, service %v", readyAt, serviceAt)
		}
		time.Sleep(10 * time.Millisecond) // polling up to a deadline
	}
	return readyAt, serviceAt
}

// httpTraffic is HTTP traffic on `karat serve` from several goroutines:
// the device list with one token (a session validation), the shop's KPIs
// and a customer (cached reads), the gold price, an invoice (its own
// rate-limit policy, fails to a local limiter) and the clerk's login (fails
// closed),
// every /v1 route under the API policy (fails open). It records every
// status, the slowest request, and as problems: a transport error, a 5xx
// other than 503, a 503 without Retry-After, a request slower than 2 s.
type httpTraffic struct {
	crew
	c        *serveClient
	statuses map[string]map[int]int // by route, under mu
	slowest  time.Duration          // under mu
}

// trafficRoutes are the requests httpTraffic cycles through.
var trafficRoutes = []struct{ name, method, path string }{
	{"sessions", "GET", "/v1/sessions"},
	{"kpis", "GET", "/v1/tenants/" + demoTenant + "/kpis"},
	{"customer", "GET", "/v1/tenants/" + demoTenant + "/customers/1"},
	{"gold", "GET", "/v1/gold-price"},
	{"invoice", "POST", "/v1/tenants/" + demoTenant + "/invoices"},
	{"login", "POST", "/v1/auth/login"},
}

func startHTTPTraffic(t *testing.T, c *serveClient, token string, workers int) *httpTraffic {
	t.Helper()
	tr := &httpTraffic{crew: crew{stop: make(chan struct{})}, c: c, statuses: map[string]map[int]int{}}
	t.Cleanup(tr.halt)
	for w := range workers {
		tr.wg.Go(func() { tr.run(w, token) })
	}
	return tr
}

func (tr *httpTraffic) run(w int, token string) {
	for i := 0; ; i++ {
		select {
		case <-tr.stop:
			return
		case <-time.After(5 * time.Millisecond): // pacing, not synchronisation
		}
		rt := trafficRoutes[(i+w)%len(trafficRoutes)]
		var body any
		tok := token
		switch rt.name {
		case "invoice":
			body = map[string]any{"customer_id": "1", "total": 1000}
		case "login":
			// The clerk, not the owner that waitBack signs in: a login
			// tried while the store is stalled has reserved a unit of the
			// login quota that runs when the stall ends, and is never
			// given back (see TestServeUnderFaults).
			body = map[string]string{"tenant": demoTenant, "email": demoClerk, "password": karatproc.DemoPassword}
			tok = ""
		}
		r, err := karatproc.Call(tr.c.hc, tr.c.base, rt.method, rt.path, "", tok, body)
		tr.mu.Lock()
		switch {
		case err != nil:
			tr.problemLocked(fmt.Sprintf("%s: %v", rt.name, err))
		default:
			if tr.statuses[rt.name] == nil {
				tr.statuses[rt.name] = map[int]int{}
			}
			tr.statuses[rt.name][r.Status]++
			switch {
			case r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "":
				tr.problemLocked(fmt.Sprintf("%s: 503 without Retry-After", rt.name))
			case r.Status >= 500 && r.Status != http.StatusServiceUnavailable:
				tr.problemLocked(fmt.Sprintf("%s: %d %s", rt.name, r.Status, r.Body))
			}
			if r.Took > 2*time.Second {
				tr.problemLocked(fmt.Sprintf("%s took %v", rt.name, r.Took))
			}
			tr.slowest = max(tr.slowest, r.Took)
		}
		tr.mu.Unlock()
	}
}

// finish stops the traffic, fails the test on every problem it saw, and
// returns the statuses by route and the slowest request.
func (tr *httpTraffic) finish(t *testing.T) (map[string]map[int]int, time.Duration) {
	t.Helper()
	tr.report(t)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.statuses, tr.slowest.Round(time.Millisecond)
}

// TestServeUnderFaults drives the built `karat serve` binary under traffic
// while its Redis is killed with SIGKILL and restarted on the same port, or
// stalled behind a proxy, on both drivers: no response is a 5xx other than
// 503, none takes longer than 2 s, /readyz turns 503 within a second, a
// login (the policy fails closed) is 503 and never 200 while the store is
// away, and /readyz and a full login + authenticated request come back
// within 2 s of the server's return (measured and logged).
//
// Seen here, not fixed: every login tried while the store is stalled
// reserves a unit of the login quota (per IP + email) in a script the
// stalled connection delivers when the stall ends, after the request has
// answered 503, so the reservation is never given back: five such logins
// and that user is refused (429) from that address until the quota refills
// (one unit per 3 min with the preset). The traffic's clerk shows it as
// login 429s after a stall.
func TestServeUnderFaults(t *testing.T) {
	for _, drv := range driverNames {
		for _, fault := range []string{"kill", "stall"} {
			t.Run(drv+"/"+fault, func(t *testing.T) {
				redis := redistest.NewKillable(t, redistest.NoPersistence)
				url := redis.URL
				var proxy *redistest.Proxy
				if fault == "stall" {
					proxy = redistest.NewProxy(t, redis.Addr)
					url = "redis://" + proxy.Addr
				}
				c := newServeClient(startServe(t, url, drv))
				defer c.close()
				token, _ := c.mustLogin(t, demoTenant, demoOwner)
				tr := startHTTPTraffic(t, c, token, 4)
				time.Sleep(300 * time.Millisecond) // traffic before the fault (not synchronisation)

				if fault == "kill" {
					redis.Kill()
				} else {
					proxy.Stall()
				}
				faulted := time.Now()
				readyDown := c.waitNotReady(t, faulted, 2*time.Second)
				if readyDown > time.Second+callSlack {
					t.Errorf("/readyz turned 503 %v after the fault, want within 1 s", readyDown)
				}
				for range 3 {
					start := time.Now()
					if status, _, _, err := c.login(demoTenant, demoOwner); err != nil || status != http.StatusServiceUnavailable {
						t.Errorf("login with the store away: %d %v, want 503 (fails closed)", status, err)
					}
					if took := time.Since(start); took > 2*time.Second {
						t.Errorf("login with the store away took %v", took)
					}
				}
				time.Sleep(500 * time.Millisecond) // stay away a while, under traffic

				if fault == "kill" {
					redis.Start()
				} else {
					proxy.Resume()
				}
				readyAt, serviceAt := c.waitBack(t, time.Now())
				statuses, slowest := tr.finish(t)
				if readyAt > recoveryBound || serviceAt > recoveryBound {
					t.Errorf("back after the server's return: /readyz %v, login + request %v; want within %v", readyAt, serviceAt, recoveryBound)
				}
				figure(t, "karat serve: /readyz 503 %v after the %s; after the server's return /readyz 200 in %v, login + authenticated request in %v; statuses %v, slowest %v",
					readyDown.Round(time.Millisecond), fault, readyAt.Round(time.Millisecond), serviceAt.Round(time.Millisecond),
					statuses, slowest)
			})
		}
	}
}
