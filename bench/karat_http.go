package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
)

// karatHTTPGroups is the HTTP group: GET /v1/tenants/tehran-gold/products/{id}
// over loopback, through httpapi (session validation, the API rate-limit
// policy with its headers, a cache hit, the JSON answer) and through the
// same gorilla/mux route with a bare handler that reads the product from the
// same data source and writes it as JSON. The load generator is in the same
// process, over keep-alive connections, so its costs (and allocations) are
// in both rows alike.
func karatHTTPGroups() []Group {
	return []Group{{
		Name: "http", Title: "HTTP GET of a cached product: httpapi (session + rate limit + cache hit) vs the same mux route bare",
		Keyspaces: []Keyspace{Hot, Spread},
		Scenarios: []Scenario{
			{Name: "karat-httpapi", Kind: KindKarat, Setup: httpKarat},
			{Name: "bare-mux", Kind: KindFloor, Setup: httpBare},
		},
	}}
}

const httpTenant = "tehran-gold"

// benchData is the demo catalogue with as many products as the keyspace
// holds, answering at once.
type benchData struct{ *demo.Catalogue }

// Product returns a product for any non-negative numeric id of httpTenant.
func (benchData) Product(ctx context.Context, tenant, id string) (demo.Product, error) {
	if err := ctx.Err(); err != nil {
		return demo.Product{}, err
	}
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 || tenant != httpTenant {
		return demo.Product{}, fmt.Errorf("%w: product %q", demo.ErrNotFound, id)
	}
	return demo.Product{ID: id, Name: "Solitaire ring, 18k white gold", WeightG: 3.15, Karat: 18, Price: 189900 + int64(n)}, nil
}

var errHTTPStatus = errors.New("unexpected HTTP status")

// httpServer serves h on loopback with a keep-alive client for it.
type httpServer struct {
	srv    *httptest.Server
	tr     *http.Transport
	client *http.Client
	urls   []string
}

func newHTTPServer(env *Env, h http.Handler) *httpServer {
	s := &httpServer{srv: httptest.NewServer(h), tr: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	s.client = &http.Client{Transport: s.tr, Timeout: 10 * time.Second}
	s.urls = make([]string, env.Keys)
	for i := range s.urls {
		s.urls[i] = s.srv.URL + "/v1/tenants/" + httpTenant + "/products/" + strconv.Itoa(i)
	}
	return s
}

func (s *httpServer) close() { s.tr.CloseIdleConnections(); s.srv.Close() }

// instance is the load generator: one GET of the key's URL with the cookie,
// the body read to the end, 200 expected.
func (s *httpServer) instance(cookie string, closeFn func()) *Instance {
	return &Instance{
		NewOp: func() Op {
			return func(ctx context.Context, k int) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[k], nil)
				if err != nil {
					return err
				}
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				res, err := s.client.Do(req)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil {
					return err
				}
				if res.StatusCode != http.StatusOK {
					return fmt.Errorf("%w %d", errHTTPStatus, res.StatusCode)
				}
				return nil
			}
		},
		Close: closeFn,
	}
}

// httpKarat mounts httpapi over a rueidis store (client-side cache on) and
// logs in the demo owner of httpTenant.
func httpKarat(env *Env) (*Instance, error) {
	s, err := openKarat(env, "")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Instance, error) { s.Close(); return nil, err }
	users, err := demo.NewUsers("bench password", 4)
	if err != nil {
		return fail(err)
	}
	ns, err := karatNS(env, "karat-http-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		return fail(err)
	}
	api, err := httpapi.New(s, users, benchData{demo.NewCatalogue(nil)}, &httpapi.Options{
		Namespace:      ns,
		SessionSecrets: [][]byte{[]byte("a benchmark secret of 32 bytes or more")},
		// A limit the load never reaches: every request is decided (and
		// gets its RateLimit headers), none is refused.
		Policies: httpapi.Policies{API: ratelimit.Policy{Name: "api", Limit: openLimit, Window: openPeriod}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fail(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	hs := newHTTPServer(env, r)
	res, err := hs.client.Post(hs.srv.URL+"/v1/auth/login", "application/json", strings.NewReader(
		`{"tenant":"`+httpTenant+`","email":"owner@`+httpTenant+`.test","password":"bench password"}`))
	if err != nil {
		hs.close()
		return fail(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == "karat_session" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if res.StatusCode != http.StatusOK || cookie == "" {
		hs.close()
		return fail(fmt.Errorf("login: %w %d, cookie %t", errHTTPStatus, res.StatusCode, cookie != ""))
	}
	return hs.instance(cookie, func() { hs.close(); s.Close() }), nil
}

// httpBare is the same route on gorilla/mux without session, rate limit or
// cache: read the product from the data source, write it as JSON.
func httpBare(env *Env) (*Instance, error) {
	data := benchData{demo.NewCatalogue(nil)}
	r := mux.NewRouter()
	r.HandleFunc("/v1/tenants/{tenant}/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		v := mux.Vars(r)
		p, err := data.Product(r.Context(), v["tenant"], v["id"])
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p)
	}).Methods(http.MethodGet)
	hs := newHTTPServer(env, r)
	return hs.instance("", hs.close), nil
}
