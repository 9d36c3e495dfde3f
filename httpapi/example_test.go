package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
)

// Mount the API on a router over the memory store, log in and read a
// shop's KPIs twice: the first read loads, the second is a cache hit.
func ExampleAPI_Mount() {
	ctx := context.Background()
	s, err := drivers.Open(ctx, "memory://")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	users, err := demo.NewUsers("example password", 4)
	if err != nil {
		panic(err)
	}
	api, err := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
		SessionSecrets: [][]byte{[]byte("an example secret of 32 bytes or more")},
	})
	if err != nil {
		panic(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	res, err := http.Post(srv.URL+"/v1/auth/login", "application/json", strings.NewReader(
		`{"tenant":"tehran-gold","email":"owner@tehran-gold.test","password":"example password"}`))
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println("login:", res.StatusCode)
	cookie := res.Cookies()[0]

	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/tenants/tehran-gold/kpis", nil)
		req.AddCookie(cookie)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		fmt.Println("kpis:", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	// Output:
	// login: 200
	// kpis: 200 karat; fwd=miss; stored
	// kpis: 200 karat; hit
}

// Every error is an RFC 9457 problem.
func ExampleWriteProblem() {
	w := httptest.NewRecorder()
	httpapi.WriteProblem(w, httptest.NewRequest("GET", "/v1/tenants/x/kpis", nil), http.StatusForbidden, "not your shop")
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Print(w.Body.String())
	// Output:
	// 403 application/problem+json
	// {"type":"about:blank","title":"Forbidden","status":403,"detail":"not your shop","instance":"/v1/tenants/x/kpis"}
}

// Health serves /readyz with the store's ping latency.
func ExampleHealth_Readyz() {
	s, err := drivers.Open(context.Background(), "memory://")
	if err != nil {
		panic(err)
	}
	h := httpapi.NewHealth(s, nil)
	w := httptest.NewRecorder()
	h.Readyz(w, httptest.NewRequest("GET", "/readyz", nil))
	fmt.Println(w.Code)
	s.Close()
	w = httptest.NewRecorder()
	h.Readyz(w, httptest.NewRequest("GET", "/readyz", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	// Output:
	// 200
	// 503 application/problem+json
}
