package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/karatproc"
	"github.com/karat-go/karat/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type reply = karatproc.Reply

var call = karatproc.Call

const demoPassword = karatproc.DemoPassword

// The load's size, from the environment for the long run on demand:
//
//	KARAT_LOAD_DURATION  how long the traffic may run (default 30s)
//	KARAT_LOAD_VUS       virtual users (default 40)
//	KARAT_LOAD_API_LIMIT each user's API quota (default 6000: about 25 s of
//	                     traffic on the 2-core machine, the rest to the 30 s deadline)
//	KARAT_LOAD_DRIVER    rueidis (default) or goredis
func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

type demoUser struct{ tenant, email string }

var demoUsers = []demoUser{
	{"tehran-gold", "owner@tehran-gold.test"}, {"tehran-gold", "clerk@tehran-gold.test"},
	{"shiraz-silver", "owner@shiraz-silver.test"}, {"shiraz-silver", "clerk@shiraz-silver.test"},
}

const invoiceLimit = 10

// apiWindow is every policy's window in the load: long, so that quotas
// refill by less than one unit during a default run.
const apiWindow = 30 * 24 * time.Hour

// loadSession is a session a virtual user created.
type loadSession struct {
	token, id string
	user      int // index in demoUsers
	revoked   bool
}

// vu is one virtual user: one client address, one demo user, its sessions.
type vu struct {
	n        int
	ip       string
	user     int
	sessions []*loadSession
	firstAt  time.Time // when it sent its first request
	used     int64     // API units its responses were charged
	denied   bool      // the API policy has denied it
	invoices int       // 201s
	attempts int       // invoice attempts
}

var rateLimitRe = regexp.MustCompile(`"([a-z-]+)";r=([0-9]+)`)

// remaining returns the r= of policy in a RateLimit field.
func remaining(h http.Header, policy string) (int64, bool) {
	for _, m := range rateLimitRe.FindAllStringSubmatch(h.Get("RateLimit"), -1) {
		if m[1] == policy {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			return n, true
		}
	}
	return 0, false
}

// stats are what the load measured.
type stats struct {
	mu        sync.Mutex
	latencies []time.Duration
	byStatus  map[int]int
	problems  []string
	transport atomic.Int64
}

func (s *stats) add(r *reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies = append(s.latencies, r.Took)
	s.byStatus[r.Status]++
}

func (s *stats) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 30 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// TestLoad drives `karat serve` on a real Redis with virtual users that log
// in (failing first, to hit the login limit), validate, list their devices,
// create invoices (an update, limited per user), revoke a device, and use
// up their API quota; then checks zero lost sessions, zero resurrected
// ones, exact rate-limit counts, no 5xx, and the server's RSS.
func TestLoad(t *testing.T) {
	if raceEnabled && os.Getenv("KARAT_LOAD") != "1" {
		t.Skip("SKIPPED under -race: the race detector slows the load's own clients several times over, " +
			"and the load test runs in .ci/run's own step without it (KARAT_LOAD=1 forces it here)")
	}
	dur := 30 * time.Second
	if v := os.Getenv("KARAT_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KARAT_LOAD_DURATION=%q: %v", v, err)
		}
		dur = d
	}
	nVU := envInt(t, "KARAT_LOAD_VUS", 40)
	apiLimit := int64(envInt(t, "KARAT_LOAD_API_LIMIT", 6000))
	driver := os.Getenv("KARAT_LOAD_DRIVER")
	if driver == "" {
		driver = "rueidis"
	}
	redis := redistest.NewKillable(t, redistest.NoPersistence)
	// Windows of 30 days: over a run of minutes the quotas refill by less
	// than one unit, so every count below is exact.
	policies := fmt.Sprintf("api %d/%s fail=open; login 5/%[2]s failures-only; invoice-create %d/%[2]s fail=local",
		apiLimit, apiWindow, invoiceLimit)
	srv := karatproc.Start(t, redis.URL+"?driver="+driver, "--trusted-proxies", "127.0.0.1/32", "--rate-limits", policies)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: nVU + 8}}
	rssStart := srv.RSSKB(t)

	st := &stats{byStatus: map[int]int{}}
	do := func(v *vu, method, path, token string, body any) *reply {
		if v.firstAt.IsZero() {
			v.firstAt = time.Now()
		}
		r, err := call(hc, srv.Base, method, path, v.ip, token, body)
		if err != nil {
			st.transport.Add(1)
			st.problem("vu %d %s %s: %v", v.n, method, path, err)
			return nil
		}
		st.add(r)
		if r.Status >= 500 {
			st.problem("vu %d %s %s: %d %s", v.n, method, path, r.Status, r.Body)
		}
		// API counting: each response of this client shows one unit less
		// than the one before, plus what the policy refilled since the
		// client's first request (at most limit × elapsed / window, which
		// is below one unit in the default runs: the count is then exact),
		// down to 0; the next request is the 429 (the only one whose
		// RateLimit field names no other policy: the API policy is decided
		// before any other).
		rem, ok := remaining(r.Header, "api")
		switch {
		case !ok:
			st.problem("vu %d %s %s: no api item in RateLimit %q", v.n, method, path, r.Header.Get("RateLimit"))
		case r.Status == http.StatusTooManyRequests && rem == 0 && len(rateLimitRe.FindAllString(r.Header.Get("RateLimit"), -1)) == 1:
			if lo := apiLimit - v.used; lo > 0 {
				st.problem("vu %d: API denial with %d of its quota left", v.n, lo)
			}
			v.denied = true
		default:
			v.used++
			lo := apiLimit - v.used
			hi := lo + int64(float64(time.Since(v.firstAt))*float64(apiLimit)/float64(apiWindow))
			if rem < max(lo, 0) || rem > hi {
				st.problem("vu %d %s %s: api r=%d, want %d..%d (request %d)", v.n, method, path, rem, lo, hi, v.used)
			}
		}
		if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
			st.problem("vu %d %s %s: 429 without Retry-After", v.n, method, path)
		}
		return r
	}
	login := func(v *vu, device string) *loadSession {
		u := demoUsers[v.user]
		r := do(v, "POST", "/v1/auth/login", "", map[string]string{"tenant": u.tenant, "email": u.email, "password": demoPassword, "device": device})
		if r == nil || r.Status != http.StatusOK {
			if r != nil && r.Status != http.StatusTooManyRequests {
				st.problem("vu %d login: %d %s", v.n, r.Status, r.Body)
			}
			return nil
		}
		var out struct {
			Token   string
			Session struct{ ID string }
		}
		if err := json.Unmarshal(r.Body, &out); err != nil || out.Token == "" || out.Session.ID == "" {
			st.problem("vu %d login: %v %s", v.n, err, r.Body)
			return nil
		}
		s := &loadSession{token: out.Token, id: out.Session.ID, user: v.user}
		v.sessions = append(v.sessions, s)
		return s
	}

	vus := make([]*vu, nVU)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := range vus {
		v := &vu{n: i, ip: fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250), user: i % len(demoUsers)}
		vus[i] = v
		wg.Go(func() {
			// Failed logins: exactly 5 × 401, then 429.
			for k := range 7 {
				r := do(v, "POST", "/v1/auth/login", "", map[string]string{"tenant": "tehran-gold",
					"email": fmt.Sprintf("nobody-%d@load.test", v.n), "password": "wrong"})
				want := http.StatusUnauthorized
				if k >= 5 {
					want = http.StatusTooManyRequests
				}
				if r != nil && r.Status != want {
					st.problem("vu %d failed login %d: %d, want %d", v.n, k+1, r.Status, want)
				}
			}
			main := login(v, "main")
			if main == nil {
				return
			}
			second := login(v, "second")
			u := demoUsers[v.user]
			for it := 0; time.Now().Before(deadline) && !v.denied; it++ {
				switch it % 4 {
				case 0:
					r := do(v, "GET", "/v1/sessions", main.token, nil)
					if r != nil && r.Status == http.StatusOK {
						var list struct {
							Sessions []struct {
								ID      string
								Current bool
							}
						}
						if err := json.Unmarshal(r.Body, &list); err != nil {
							st.problem("vu %d sessions: %v %s", v.n, err, r.Body)
						}
						found := false
						for _, e := range list.Sessions {
							found = found || e.ID == main.id && e.Current
						}
						if !found {
							st.problem("vu %d: its session is not current in its device list: %s", v.n, r.Body)
						}
					} else if r != nil && r.Status != http.StatusTooManyRequests {
						st.problem("vu %d sessions: %d %s", v.n, r.Status, r.Body)
					}
				case 1:
					r := do(v, "GET", "/v1/tenants/"+u.tenant+"/kpis", main.token, nil)
					if r != nil && r.Status != http.StatusOK && r.Status != http.StatusTooManyRequests {
						st.problem("vu %d kpis: %d %s", v.n, r.Status, r.Body)
					}
				case 2:
					v.attempts++
					r := do(v, "POST", "/v1/tenants/"+u.tenant+"/invoices", main.token,
						map[string]any{"customer_id": "1", "total": 1000 + it, "items": []string{"ring"}})
					switch {
					case r == nil:
					case r.Status == http.StatusCreated:
						v.invoices++
					case r.Status == http.StatusTooManyRequests:
					default:
						st.problem("vu %d invoice: %d %s", v.n, r.Status, r.Body)
					}
				case 3:
					if it%20 != 3 {
						if r := do(v, "GET", "/v1/tenants/"+u.tenant+"/customers/1", second.token, nil); r != nil &&
							r.Status != http.StatusOK && r.Status != http.StatusTooManyRequests {
							st.problem("vu %d customer: %d %s", v.n, r.Status, r.Body)
						}
						continue
					}
					// A device signs in and is revoked from the main one.
					extra := login(v, fmt.Sprint("extra ", it))
					if extra == nil {
						continue
					}
					r := do(v, "DELETE", "/v1/sessions/"+extra.id, main.token, nil)
					if r != nil && r.Status == http.StatusNoContent {
						extra.revoked = true
						// Seen at once, never resurrected.
						if r := do(v, "GET", "/v1/sessions", extra.token, nil); r != nil &&
							r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
							st.problem("vu %d: a revoked session answered %d", v.n, r.Status)
						}
					} else if r != nil && r.Status != http.StatusTooManyRequests {
						st.problem("vu %d revoke: %d %s", v.n, r.Status, r.Body)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	rssEnd := srv.RSSKB(t)

	// Checks, from fresh client addresses so that no quota interferes.
	checkIP := 0
	check := func(token string) int {
		checkIP++
		r, err := call(hc, srv.Base, "GET", "/v1/sessions", fmt.Sprintf("198.19.%d.%d", checkIP/250, 1+checkIP%250), token, nil)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		return r.Status
	}
	lost, resurrected, live, revokedN := 0, 0, 0, 0
	byUser := map[int][]*loadSession{}
	for _, v := range vus {
		for _, s := range v.sessions {
			byUser[s.user] = append(byUser[s.user], s)
			switch status := check(s.token); {
			case s.revoked && status != http.StatusUnauthorized:
				resurrected++
			case !s.revoked && status != http.StatusOK:
				lost++
			case s.revoked:
				revokedN++
			default:
				live++
			}
		}
	}
	// Revoke-others, per user, from its first session: every other
	// session of that user ends, and only those.
	revokeOthersOK := 0
	for u, ss := range byUser {
		var keep *loadSession
		wantRevoked := 0
		for _, s := range ss {
			if !s.revoked {
				if keep == nil {
					keep = s
				} else {
					wantRevoked++
				}
			}
		}
		if keep == nil {
			continue
		}
		checkIP++
		r, err := call(hc, srv.Base, "POST", "/v1/sessions/revoke-others", fmt.Sprintf("198.19.%d.%d", checkIP/250, 1+checkIP%250), keep.token, nil)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("revoke-others for user %d: %v %v", u, err, r)
		}
		var out struct{ Revoked int }
		_ = json.Unmarshal(r.Body, &out)
		if out.Revoked != wantRevoked {
			t.Errorf("revoke-others for user %d revoked %d, want %d", u, out.Revoked, wantRevoked)
		}
		for _, s := range ss {
			status := check(s.token)
			if s == keep && status != http.StatusOK {
				t.Errorf("revoke-others ended the caller's own session (%d)", status)
			}
			if s != keep && status != http.StatusUnauthorized {
				t.Errorf("a session survived revoke-others (%d)", status)
				resurrected++
			}
		}
		revokeOthersOK++
	}
	// Invoices: exactly invoiceLimit per user when it tried more.
	perUser := map[int][2]int{}
	for _, v := range vus {
		p := perUser[v.user]
		perUser[v.user] = [2]int{p[0] + v.invoices, p[1] + v.attempts}
	}
	for u, p := range perUser {
		if p[1] >= invoiceLimit && p[0] != invoiceLimit {
			t.Errorf("user %d: %d invoices created in %d attempts, want exactly %d", u, p[0], p[1], invoiceLimit)
		}
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	for _, p := range st.problems {
		t.Error(p)
	}
	n := len(st.latencies)
	slices.Sort(st.latencies)
	pct := func(q float64) time.Duration {
		if n == 0 {
			return 0
		}
		return st.latencies[min(n-1, int(float64(n)*q))]
	}
	fivexx := 0
	for code, c := range st.byStatus {
		if code >= 500 {
			fivexx += c
		}
	}
	if fivexx > 0 {
		t.Errorf("%d responses were 5xx", fivexx)
		shown := 0
		for _, line := range strings.Split(srv.Log(), "\n") {
			if strings.Contains(line, `"status":5`) && shown < 10 {
				t.Logf("karat: %s", line)
				shown++
			}
		}
	}
	if lost > 0 || resurrected > 0 {
		t.Errorf("%d sessions lost, %d resurrected", lost, resurrected)
	}
	if live == 0 || revokedN == 0 || revokeOthersOK == 0 {
		t.Errorf("the load checked too little: %d live, %d revoked sessions, %d revoke-others", live, revokedN, revokeOthersOK)
	}
	if rssEnd > max(4*rssStart, rssStart+256<<10) {
		t.Errorf("RSS grew from %d KiB to %d KiB", rssStart, rssEnd)
	}
	t.Logf("figure: load: driver %s, %d virtual users, %v: %d requests, %.0f req/s, p50 %v, p99 %v, max %v; statuses %v; transport errors %d",
		driver, nVU, elapsed.Round(time.Millisecond), n, float64(n)/elapsed.Seconds(), pct(0.50), pct(0.99), pct(1), st.byStatus, st.transport.Load())
	t.Logf("figure: load: %d sessions live and valid (0 lost), %d revoked and refused (0 resurrected), revoke-others on %d users; RSS %d KiB at start, %d KiB after",
		live, revokedN, revokeOthersOK, rssStart, rssEnd)
}
