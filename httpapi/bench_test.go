package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// benchServer serves the API over url's store on a loopback HTTP server
// and returns it with a logged-in owner's cookie.
func benchServer(b *testing.B, url string) (*httptest.Server, *http.Cookie) {
	b.Helper()
	ctx := context.Background()
	s, err := drivers.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	ns := store.MustNamespace("karat-bench", b.Name())
	b.Cleanup(func() {
		if sc, ok := store.Capability[store.Scanner](s); ok {
			_ = sc.Scan(ctx, ns.Prefix(), func(keys []string) error {
				for _, k := range keys {
					_, _ = s.Delete(ctx, k)
				}
				return nil
			})
		}
		s.Close()
	})
	users, err := demo.NewUsers("bench password", 4)
	if err != nil {
		b.Fatal(err)
	}
	api, err := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
		Namespace:      ns,
		SessionSecrets: [][]byte{[]byte("a benchmark secret of 32 bytes or more")},
		Policies:       httpapi.Policies{API: ratelimit.Policy{Name: "api", Limit: 1 << 40, Window: ratelimit.MaxWindow, FailMode: ratelimit.FailOpen}},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	res, err := http.Post(srv.URL+"/v1/auth/login", "application/json", strings.NewReader(
		`{"tenant":"tehran-gold","email":"owner@tehran-gold.test","password":"bench password"}`))
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("login: %v %v", res, err)
	}
	res.Body.Close()
	return srv, res.Cookies()[0]
}

func benchURLs(b *testing.B) map[string]string {
	srv := redistest.Single(b)
	return map[string]string{
		"memory":  "memory://",
		"rueidis": srv.URL,
		"goredis": srv.URL + "?driver=goredis",
	}
}

// BenchmarkCachedRead is an authenticated, rate-limited, cached read over
// real HTTP on loopback (GET /v1/tenants/tehran-gold/kpis, a cache hit):
// session validation, the API policy's decision, the cache lookup, the
// JSON answer; 64 goroutines.
func BenchmarkCachedRead(b *testing.B) {
	for _, name := range []string{"memory", "rueidis", "goredis"} {
		b.Run(name, func(b *testing.B) {
			srv, cookie := benchServer(b, benchURLs(b)[name])
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
			get := func() {
				req, _ := http.NewRequest("GET", srv.URL+"/v1/tenants/tehran-gold/kpis", nil)
				req.AddCookie(cookie)
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Errorf("status %d", res.StatusCode)
				}
			}
			get()                // load once: every timed request is a hit
			b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 goroutines
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
		})
	}
}
