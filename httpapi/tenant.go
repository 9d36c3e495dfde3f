package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
)

// How the karat cache answered a request.
const (
	fromCache    = iota // a hit
	loadedStored        // a miss, loaded and stored
	loadedAround        // the store failed: loaded from the data source, not stored
)

// cacheStatus is the RFC 9211 Cache-Status field of a response the karat
// cache answered (hit), had to load (miss, then stored), or loaded around a
// failing store (miss, not stored, with a detail saying why).
func cacheStatus(how int32) string {
	switch how {
	case loadedStored:
		return "karat; fwd=miss; stored"
	case loadedAround:
		return "karat; fwd=miss; detail=store-unavailable"
	}
	return "karat; hit"
}

// cached answers a cache-aside GET: it loads through c with load when the
// entry is missing (or the store fails: the tenant policies fall back to the
// loader), says hit, miss or fallback in Cache-Status, and maps errors: not
// found 404, store down 503 (only when the loader fails too, or for a
// policy without the fallback).
func cached[T any](a *API, w http.ResponseWriter, r *http.Request, c *cache.Cache[T], name, tenant, key string, load func(ctx context.Context) (T, error)) {
	// No deadline of its own: the cache bounds its loads by LoadTimeout
	// and its store calls by StoreTimeout (see Options.LoadTimeout).
	var how atomic.Int32
	v, err := c.GetOrLoad(r.Context(), tenant, key, func(ctx context.Context) (T, error) {
		if cache.IsFallback(ctx) {
			how.Store(loadedAround)
		} else {
			how.Store(loadedStored)
		}
		v, err := load(ctx)
		if errors.Is(err, demo.ErrNotFound) {
			// The cache's own not-found, so that the policy's NegativeTTL
			// applies.
			return v, errors.Join(cache.ErrNotFound, err)
		}
		return v, err
	})
	switch {
	case errors.Is(err, cache.ErrNotFound), errors.Is(err, demo.ErrNotFound):
		a.opts.Metrics.CacheResult(name, result(how.Load()))
		w.Header().Set("Cache-Status", cacheStatus(how.Load()))
		WriteProblem(w, r, http.StatusNotFound, name+" not found")
		return
	case err != nil:
		a.opts.Metrics.CacheResult(name, "error")
		writeError(w, r, err)
		return
	}
	a.opts.Metrics.CacheResult(name, result(how.Load()))
	w.Header().Set("Cache-Status", cacheStatus(how.Load()))
	writeJSON(w, http.StatusOK, v)
}

// result is the metrics label of how the cache answered.
func result(how int32) string {
	switch how {
	case loadedStored:
		return "miss"
	case loadedAround:
		return "fallback"
	}
	return "hit"
}

// kpiKey is the cache key of a shop's KPI summary.
const kpiKey = "summary"

func (a *API) getKPIs(w http.ResponseWriter, r *http.Request) {
	t := CallerOf(r).Session.Tenant
	cached(a, w, r, a.kpis, "kpis", t, kpiKey, func(ctx context.Context) (demo.KPIs, error) {
		return a.data.KPIs(ctx, t)
	})
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request) {
	t, id := CallerOf(r).Session.Tenant, mux.Vars(r)["id"]
	cached(a, w, r, a.customers, "customer", t, id, func(ctx context.Context) (demo.Customer, error) {
		return a.data.Customer(ctx, t, id)
	})
}

func (a *API) getProduct(w http.ResponseWriter, r *http.Request) {
	t, id := CallerOf(r).Session.Tenant, mux.Vars(r)["id"]
	cached(a, w, r, a.products, "product", t, id, func(ctx context.Context) (demo.Product, error) {
		return a.data.Product(ctx, t, id)
	})
}

func (a *API) getInvoice(w http.ResponseWriter, r *http.Request) {
	t, id := CallerOf(r).Session.Tenant, mux.Vars(r)["id"]
	cached(a, w, r, a.invoices, "invoice", t, id, func(ctx context.Context) (demo.Invoice, error) {
		return a.data.Invoice(ctx, t, id)
	})
}

func (a *API) goldPrice(w http.ResponseWriter, r *http.Request) {
	cached(a, w, r, a.gold, "gold-price", "", "usd", func(ctx context.Context) (demo.GoldPrice, error) {
		return a.data.GoldPrice(ctx)
	})
}

type invoiceRequest struct {
	CustomerID string   `json:"customer_id"`
	Total      int64    `json:"total"`
	Items      []string `json:"items"`
}

// createInvoice stores an invoice (limited per user) and drops the shop's
// cached KPIs, which the invoice changed.
func (a *API) createInvoice(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	if !a.decide(w, r, ratelimit.Request{Policy: a.pol.Invoice, Key: "user:" + c.Session.User, Cost: 1}) {
		return
	}
	var in invoiceRequest
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &in) {
		return
	}
	inv, err := a.data.CreateInvoice(r.Context(), c.Session.Tenant, demo.Invoice{CustomerID: in.CustomerID, Total: in.Total, Items: in.Items})
	if errors.Is(err, demo.ErrInvalid) {
		WriteProblem(w, r, http.StatusUnprocessableEntity, "invalid invoice: a known customer_id and a positive total are required")
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	if err := a.kpis.Delete(ctx, c.Session.Tenant, kpiKey); err != nil {
		// The invoice is stored; the KPIs will be stale until their TTL.
		// Say so rather than pretend.
		setLogError(r, err)
		w.Header().Set("Warning", `199 karat "KPIs not invalidated: store unavailable"`)
	}
	w.Header().Set("Location", "/v1/tenants/"+url.PathEscape(c.Session.Tenant)+"/invoices/"+url.PathEscape(inv.ID))
	writeJSON(w, http.StatusCreated, inv)
}

// upload accepts a body of at most MaxUploadBytes (413 beyond, checked on
// Content-Length first and while reading), limited per user, and answers
// its size and SHA-256. The demo keeps nothing.
func (a *API) upload(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	if !a.decide(w, r, ratelimit.Request{Policy: a.pol.Upload, Key: "user:" + c.Session.User, Cost: 1}) {
		return
	}
	if r.ContentLength > a.opts.MaxUploadBytes {
		WriteProblem(w, r, http.StatusRequestEntityTooLarge, "upload larger than the limit")
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, http.MaxBytesReader(w, r.Body, a.opts.MaxUploadBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteProblem(w, r, http.StatusRequestEntityTooLarge, "upload larger than the limit")
			return
		}
		WriteProblem(w, r, http.StatusBadRequest, "could not read the upload")
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": hex.EncodeToString(id[:]), "bytes": n, "sha256": hex.EncodeToString(h.Sum(nil)),
	})
}

// adminStats reports the layers' statistics and the store: its health
// (the last ping), the driver's counters and its key count and memory where
// the driver tells (store.StatsReporter, store.UsageReporter).
func (a *API) adminStats(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	ss, err := a.sessions.Stats(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := map[string]any{
		"sessions": ss,
		"caches": map[string]any{
			"kpis": a.kpis.Stats(), "customer": a.customers.Stats(), "product": a.products.Stats(),
			"invoice": a.invoices.Stats(), "gold-price": a.gold.Stats(),
		},
		"ratelimit": a.limiter.Stats(),
	}
	st := map[string]any{"capabilities": store.Capabilities(a.s)}
	if a.opts.Health != nil {
		st["health"] = a.opts.Health.State()
	}
	if sr, ok := store.Capability[store.StatsReporter](a.s); ok {
		st["driver"] = sr.Stats()
	}
	if ur, ok := store.Capability[store.UsageReporter](a.s); ok {
		if u, err := ur.Usage(ctx); err == nil {
			st["usage"] = u
		}
	}
	out["store"] = st
	writeJSON(w, http.StatusOK, out)
}
