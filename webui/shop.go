package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
)

// The records the shop page shows: the demo catalogue's first customer,
// product and invoice.
const (
	shopCustomer = "1"
	shopProduct  = "1"
	shopInvoice  = "INV-2024-001"
)

// field is one label and value of a record; Auto values are names, shown
// with dir="auto" so that right-to-left text displays correctly.
type field struct {
	Label, Value string
	Auto         bool
}

// shopItem is one API call of the shop page and what it answered.
type shopItem struct {
	Name        string
	Path        string
	Status      int
	CacheStatus string // the API's Cache-Status field, verbatim
	Hit         bool
	Took        time.Duration
	Fields      []field
	Error       string
}

type shopContent struct {
	Items      []shopItem
	Created    string // the invoice just created
	KPIsStale  bool   // the API could not invalidate the KPIs
	KPIsHit    bool   // the KPIs after the invoice still came from the cache
	Limited    string // the invoice policy's wait, in words
	Invalid    bool
	DefaultSum int64
}

func (u *UI) shop(w http.ResponseWriter, r *http.Request) {
	c := httpapi.CallerOf(r)
	t := "/v1/tenants/" + url.PathEscape(c.Session.Tenant)
	sc := shopContent{DefaultSum: 150000}

	var kpis demo.KPIs
	var cust demo.Customer
	var prod demo.Product
	var inv demo.Invoice
	var gold demo.GoldPrice
	calls := []struct {
		name, path string
		into       any
		fields     func() []field
	}{
		{"KPIs", t + "/kpis", &kpis, func() []field {
			return []field{{Label: "Sales", Value: groupDigits(kpis.Sales)}, {Label: "Profit", Value: groupDigits(kpis.Profit)},
				{Label: "Customers", Value: strconv.Itoa(kpis.Customers)}, {Label: "Gold in stock", Value: fmtFloat(kpis.GoldG) + " g"},
				{Label: "Invoices", Value: strconv.Itoa(kpis.Invoices)}}
		}},
		{"Customer", t + "/customers/" + shopCustomer, &cust, func() []field {
			return []field{{Label: "Name", Value: cust.Name, Auto: true}, {Label: "Phone", Value: cust.Phone},
				{Label: "Balance", Value: groupDigits(cust.Balance)}}
		}},
		{"Product", t + "/products/" + shopProduct, &prod, func() []field {
			return []field{{Label: "Name", Value: prod.Name, Auto: true}, {Label: "Weight", Value: fmtFloat(prod.WeightG) + " g"},
				{Label: "Karat", Value: strconv.Itoa(prod.Karat)}, {Label: "Price", Value: groupDigits(prod.Price)}}
		}},
		{"Invoice", t + "/invoices/" + shopInvoice, &inv, func() []field {
			return []field{{Label: "Number", Value: inv.ID}, {Label: "Customer", Value: inv.CustomerID},
				{Label: "Total", Value: groupDigits(inv.Total)}, {Label: "Date", Value: stamp(inv.Created)}}
		}},
		{"Gold price", "/v1/gold-price", &gold, func() []field {
			return []field{{Label: "USD per ounce", Value: fmtFloat(gold.USDPerOunce)}}
		}},
	}
	for _, call := range calls {
		it := shopItem{Name: call.name, Path: call.path}
		res, err := u.call(r, http.MethodGet, call.path, nil)
		switch {
		case err != nil:
			it.Error = "the call failed"
		case res.status == http.StatusUnauthorized:
			// The session ended while the page was being built.
			u.toSignin(w, r)
			return
		default:
			it.Status, it.Took = res.status, res.took
			it.CacheStatus = res.header.Get("Cache-Status")
			it.Hit = strings.HasSuffix(it.CacheStatus, "; hit")
			if res.status != http.StatusOK {
				it.Error = http.StatusText(res.status)
			} else if err := res.decode(call.into); err != nil {
				it.Error = "unreadable answer"
			} else {
				it.Fields = call.fields()
			}
		}
		sc.Items = append(sc.Items, it)
	}

	q := r.URL.Query()
	if id := q.Get("created"); validID(id) {
		sc.Created = id
		sc.KPIsStale = q.Get("stale") != ""
		sc.KPIsHit = sc.Items[0].Hit
	}
	if ra := q.Get("limited"); ra != "" {
		sc.Limited = u.wait(ra)
	}
	sc.Invalid = q.Get("invalid") != ""
	d := pageData{Title: "Shop", Nav: "shop", Content: sc}
	u.withCaller(&d, c)
	u.render(w, http.StatusOK, "shop", d)
}

// validID accepts the invoice numbers the catalogue makes (INV-2024-002).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (u *UI) createInvoice(w http.ResponseWriter, r *http.Request) {
	c := httpapi.CallerOf(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.renderError(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return
	}
	total, err := strconv.ParseInt(strings.TrimSpace(r.PostForm.Get("total")), 10, 64)
	if err != nil || total <= 0 || total > 1e12 {
		http.Redirect(w, r, "/shop?invalid=1", http.StatusSeeOther)
		return
	}
	res, err := u.call(r, http.MethodPost, "/v1/tenants/"+url.PathEscape(c.Session.Tenant)+"/invoices",
		map[string]any{"customer_id": shopCustomer, "total": total, "items": []string{shopProduct}})
	if err != nil {
		u.failed(w, r, nil, err)
		return
	}
	switch res.status {
	case http.StatusCreated:
		var inv demo.Invoice
		if err := res.decode(&inv); err != nil || !validID(inv.ID) {
			u.failed(w, r, nil, err)
			return
		}
		target := "/shop?created=" + url.QueryEscape(inv.ID)
		if res.header.Get("Warning") != "" {
			target += "&stale=1"
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	case http.StatusTooManyRequests:
		ra, _ := strconv.Atoi(res.header.Get("Retry-After"))
		http.Redirect(w, r, "/shop?limited="+strconv.Itoa(max(ra, 1)), http.StatusSeeOther)
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		http.Redirect(w, r, "/shop?invalid=1", http.StatusSeeOther)
	default:
		u.failed(w, r, res, nil)
	}
}
