package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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
)

// This fuzz target was written for issue 12 (reliability); RELIABILITY.md
// lists what it asserts. Its corpus is under testdata/fuzz.

var fuzzSecret = bytes.Repeat([]byte("f"), 32)

// fuzzFixture is the API on the memory store with a logged-in owner.
type fuzzFixture struct {
	h     http.Handler
	token string
}

var (
	fuzzFixtureOnce sync.Once
	fuzzFix         *fuzzFixture
	fuzzFixtureErr  error
)

const fuzzDemoPassword = "fuzz password"

func newFuzzFixture(t testing.TB) *fuzzFixture {
	t.Helper()
	fuzzFixtureOnce.Do(func() {
		s, err := drivers.Open(context.Background(), "memory://")
		if err != nil {
			fuzzFixtureErr = err
			return
		}
		users, err := demo.NewUsers(fuzzDemoPassword, 4)
		if err != nil {
			fuzzFixtureErr = err
			return
		}
		big := ratelimit.Policy{Name: "fuzz-api", Limit: 1 << 40, Window: time.Minute, FailMode: ratelimit.FailOpen}
		api, err := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
			SessionSecrets: [][]byte{fuzzSecret},
			Policies: httpapi.Policies{API: big, PasswordReset: big.WithLimit(1 << 40),
				Invoice: big.WithLimit(1 << 40)},
		})
		if err != nil {
			fuzzFixtureErr = err
			return
		}
		r := mux.NewRouter()
		api.Mount(r)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/auth/login", strings.NewReader(
			`{"tenant":"tehran-gold","email":"owner@tehran-gold.test","password":"`+fuzzDemoPassword+`"}`))
		req.Header.Set("Content-Type", "application/json")
		r.ServeHTTP(rec, req)
		var out struct{ Token string }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Token == "" {
			fuzzFixtureErr = errors.New("login failed: " + rec.Body.String())
			return
		}
		fuzzFix = &fuzzFixture{h: r, token: out.Token}
	})
	if fuzzFixtureErr != nil {
		t.Fatal(fuzzFixtureErr)
	}
	return fuzzFix
}

// FuzzAPIBody: every body on login, password reset and invoice creation
// is answered below 500, with problem+json for every 4xx.
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
		fx := newFuzzFixture(t)
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
