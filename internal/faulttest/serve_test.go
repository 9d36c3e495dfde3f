package faulttest

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karat-go/karat/internal/karatproc"
	"github.com/karat-go/karat/internal/redistest"
)

// TestServeUnderFaults drives the built `karat serve` binary under traffic
// while its Redis is killed with SIGKILL and restarted on the same port, or
// stalled behind a proxy, on both drivers: no response is a 5xx other than
// 503, none takes longer than 2 s, /readyz turns 503 within a second, a
// login (the policy fails closed) is 503 and never 200 while the store is
// away, and /readyz and a full login + authenticated request come back
// within 2 s of the server's return (measured and logged).
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
				srv := karatproc.Start(t, url+"?driver="+drv, "--rate-limits", "api 1000000/1h fail=open")
				hc := &http.Client{Timeout: 10 * time.Second}
				get := func(path, token string) (*karatproc.Reply, error) {
					return karatproc.Call(hc, srv.Base, "GET", path, "", token, nil)
				}
				login := func() (int, string) {
					r, err := karatproc.Call(hc, srv.Base, "POST", "/v1/auth/login", "", "", map[string]string{
						"tenant": "tehran-gold", "email": "owner@tehran-gold.test", "password": karatproc.DemoPassword})
					if err != nil {
						t.Fatalf("login: %v", err)
					}
					var out struct{ Token string }
					_ = json.Unmarshal(r.Body, &out)
					return r.Status, out.Token
				}
				status, token := login()
				if status != http.StatusOK {
					t.Fatalf("login before the fault: %d", status)
				}

				// Traffic: authenticated reads and invoice writes.
				var (
					stop     = make(chan struct{})
					wg       sync.WaitGroup
					mu       sync.Mutex
					problems []string
					statuses = map[int]int{}
					slowest  atomic.Int64
				)
				for w := range 4 {
					wg.Go(func() {
						paths := []string{"/v1/sessions", "/v1/tenants/tehran-gold/kpis", "/v1/tenants/tehran-gold/customers/1"}
						for i := 0; ; i++ {
							select {
							case <-stop:
								return
							case <-time.After(5 * time.Millisecond): // pacing, not synchronisation
							}
							r, err := get(paths[(i+w)%len(paths)], token)
							mu.Lock()
							switch {
							case err != nil:
								problems = append(problems, err.Error())
							default:
								statuses[r.Status]++
								if r.Status >= 500 && r.Status != http.StatusServiceUnavailable {
									problems = append(problems, string(r.Body))
								}
								if r.Took > 2*time.Second {
									problems = append(problems, "a request took "+r.Took.String())
								}
								if int64(r.Took) > slowest.Load() {
									slowest.Store(int64(r.Took))
								}
							}
							mu.Unlock()
						}
					})
				}
				time.Sleep(300 * time.Millisecond) // traffic before the fault (not synchronisation)

				if fault == "kill" {
					redis.Kill()
				} else {
					proxy.Stall()
				}
				faulted := time.Now()
				// /readyz 503 within a second of the fault.
				for {
					r, err := get("/readyz", "")
					if err == nil && r.Status == http.StatusServiceUnavailable {
						break
					}
					if time.Since(faulted) > 2*time.Second {
						t.Fatalf("/readyz still %v %v %v after the fault", r.Status, err, time.Since(faulted))
					}
					time.Sleep(10 * time.Millisecond) // polling up to a deadline
				}
				readyDown := time.Since(faulted)
				if readyDown > time.Second+callSlack {
					t.Errorf("/readyz turned 503 %v after the fault, want within 1 s", readyDown)
				}
				for range 3 {
					start := time.Now()
					if status, _ := login(); status != http.StatusServiceUnavailable {
						t.Errorf("login with the store away: %d, want 503 (fails closed)", status)
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
				back := time.Now()
				var readyAt, serviceAt time.Duration
				for readyAt == 0 || serviceAt == 0 {
					if readyAt == 0 {
						if r, err := get("/readyz", ""); err == nil && r.Status == http.StatusOK {
							readyAt = time.Since(back)
						}
					}
					if serviceAt == 0 {
						if status, tok := login(); status == http.StatusOK {
							if r, err := get("/v1/sessions", tok); err == nil && r.Status == http.StatusOK {
								serviceAt = time.Since(back)
							}
						}
					}
					if time.Since(back) > 10*time.Second {
						t.Fatalf("not back 10 s after the server's return: readyz %v, service %v", readyAt, serviceAt)
					}
					time.Sleep(10 * time.Millisecond) // polling up to a deadline
				}
				close(stop)
				wg.Wait()
				if readyAt > recoveryBound || serviceAt > recoveryBound {
					t.Errorf("back after the server's return: /readyz %v, login + request %v; want within %v", readyAt, serviceAt, recoveryBound)
				}
				mu.Lock()
				defer mu.Unlock()
				for i, p := range problems {
					if i < 10 {
						t.Error(p)
					}
				}
				figure(t, "karat serve: /readyz 503 %v after the %s; after the server's return /readyz 200 in %v, login + authenticated request in %v; statuses %v, slowest %v",
					readyDown.Round(time.Millisecond), fault, readyAt.Round(time.Millisecond), serviceAt.Round(time.Millisecond),
					statuses, time.Duration(slowest.Load()).Round(time.Millisecond))
			})
		}
	}
}
