package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/ratelimit"
)

// The jeweller's password-reset preset: 3 per hour per account.
func ExampleLimiter_Allow() {
	s := memstore.New(nil)
	defer s.Close()
	l := ratelimit.New(s, nil)
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		d, err := l.Allow(ctx, ratelimit.PasswordReset, "user:42", 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("reset %d: allowed=%v remaining=%d retry in ~%dm\n", i, d.Allowed, d.Remaining, (d.RetryAfter.Milliseconds()+59_999)/60_000)
	}
	// Output:
	// reset 1: allowed=true remaining=2 retry in ~0m
	// reset 2: allowed=true remaining=1 retry in ~0m
	// reset 3: allowed=true remaining=0 retry in ~0m
	// reset 4: allowed=false remaining=0 retry in ~20m
}

// Logins charge only failures: peek first, charge when the password was
// wrong.
func ExampleLimiter_Peek() {
	s := memstore.New(nil)
	defer s.Close()
	l := ratelimit.New(s, nil)
	ctx := context.Background()
	login := func(password string) string {
		d, _ := l.Peek(ctx, ratelimit.Login, "user:ada", 1)
		if !d.Allowed {
			return "locked out"
		}
		if password == "right" {
			return "welcome"
		}
		_, _ = l.Allow(ctx, ratelimit.Login, "user:ada", 1)
		return "wrong password"
	}
	fmt.Println(login("right"), "/", login("right"))
	for range 5 {
		login("wrong")
	}
	fmt.Println(login("right"))
	// Output:
	// welcome / welcome
	// locked out
}

// An IP limit and a user limit decided together: the user's denial charges
// the IP nothing.
func ExampleLimiter_AllowAll() {
	s := memstore.New(nil)
	defer s.Close()
	l := ratelimit.New(s, nil)
	ctx := context.Background()
	perUser := ratelimit.Policy{Name: "invoice-user", Limit: 2, Window: ratelimit.InvoiceCreation.Window}
	reqs := []ratelimit.Request{
		{Policy: ratelimit.API, Key: "ip4:203.0.113.9"},
		{Policy: perUser, Key: "user:7"},
	}
	for range 3 {
		o, _, _ := l.AllowAll(ctx, reqs)
		fmt.Println(o.Allowed, o.Policy)
	}
	d, _ := l.Peek(ctx, ratelimit.API, "ip4:203.0.113.9", 1)
	fmt.Println("api remaining:", d.Remaining)
	// Output:
	// true invoice-user
	// true invoice-user
	// false invoice-user
	// api remaining: 98
}

// Policies from configuration, and a tier per shop plan.
func ExampleParsePolicies() {
	ps, err := ratelimit.ParsePolicies(`
		# name limit/window options
		api     100/15m fail=open
		login   5/15m   failures-only
		export  10/1h   algo=sliding fail=local share=0.25`)
	if err != nil {
		panic(err)
	}
	tiers := ratelimit.Tiers{Default: ps["api"], Plans: map[string]ratelimit.Policy{"pro": ps["api"].WithLimit(1000)}}
	fmt.Println(ps["export"].Algorithm, ps["export"].FailMode, ps["login"].ChargeFailuresOnly)
	fmt.Println(tiers.For("free").Limit, tiers.For("pro").Limit)
	// Output:
	// sliding local true
	// 100 1000
}

// The middleware on a gorilla/mux router: the client IP (behind a trusted
// proxy) for the whole API, and uploads per tenant.
func ExampleLimiter_Middleware() {
	s := memstore.New(nil)
	defer s.Close()
	l := ratelimit.New(s, nil)
	ips, _ := ratelimit.NewClientIP("10.0.0.0/8")
	tenant := ratelimit.Prefixed("tenant:", func(r *http.Request) string { return r.Header.Get("X-Tenant") })

	r := mux.NewRouter()
	r.Use(l.Middleware([]ratelimit.Rule{{Policy: ratelimit.API, Key: ips.Key}}, nil))
	up := r.PathPrefix("/uploads").Subrouter()
	up.Use(l.Middleware([]ratelimit.Rule{{Policy: ratelimit.Upload.WithLimit(1), Key: tenant}}, nil))
	up.HandleFunc("", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }).Methods(http.MethodPost)

	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/uploads", nil)
		req.RemoteAddr = "10.0.0.5:443"
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Tenant", "shop-1")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		fmt.Printf("%d retry-after=%q\n", w.Code, w.Header().Get("Retry-After"))
	}
	// Output:
	// 201 retry-after=""
	// 429 retry-after="60"
}
