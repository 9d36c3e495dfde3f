// Package demo holds the demo data that `karat serve --demo` runs on: two
// jewellery shops (tenants) with an owner and a clerk each, whose passwords
// are kept only as bcrypt hashes, and a catalogue (customers, products,
// invoices, KPIs, the gold price) behind a data source that takes a
// configurable time per load, so that the cache's effect is visible.
//
// The values are the ones the platform karat was extracted from tested with:
// customer علی احمدی (balance 75000), product گردنبند طلا (15.5 g), invoice
// INV-2024-001 (total 150000), KPIs (sales 25000, profit 5000, customers 8,
// gold 350.75 g), gold price 2075.5 USD/oz. The second shop has its own,
// different values, so that a leak between tenants shows.
//
// Choices the issue left open: bcrypt (cost 10 by default) rather than
// argon2id, because golang.org/x/crypto/bcrypt needs no tuning and its
// hashes carry their own parameters; an unknown email is checked against a
// dummy hash, so that it costs the same time as a wrong password; the
// catalogue lives in process memory (it is the "database" the cache sits in
// front of, not something karat stores).
package demo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Errors of the demo directory and catalogue.
var (
	// ErrBadCredentials: unknown tenant or email, or a wrong password. The
	// three are not told apart.
	ErrBadCredentials = errors.New("demo: bad credentials")
	// ErrNotFound: no such record in the catalogue.
	ErrNotFound = errors.New("demo: not found")
	// ErrInvalid: a record that cannot be stored (missing field, bad total).
	ErrInvalid = errors.New("demo: invalid record")
)

// Tenants are the demo shops.
var Tenants = []string{"tehran-gold", "shiraz-silver"}

// Roles of demo users.
const (
	RoleOwner = "owner"
	RoleClerk = "clerk"
)

// User is a demo user. It never holds the password, only its hash.
type User struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	hash   []byte
}

// Users is a directory of users that checks passwords against bcrypt hashes.
type Users struct {
	byKey map[string]*User // tenant + "\x00" + lowercase email
	dummy []byte
}

// NewUsers returns the four demo users (an owner and a clerk for each shop),
// all with the given password, hashed with bcrypt at cost (0 means
// bcrypt.DefaultCost). The password is not kept.
func NewUsers(password string, cost int) (*Users, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: empty demo password", ErrInvalid)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("demo: hashing the password: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not the password of anyone"), cost)
	if err != nil {
		return nil, fmt.Errorf("demo: hashing the password: %w", err)
	}
	u := &Users{byKey: map[string]*User{}, dummy: dummy}
	names := map[string][2]string{
		"tehran-gold":   {"رضا تهرانی", "سارا کریمی"},
		"shiraz-silver": {"مهدی شیرازی", "نرگس رحیمی"},
	}
	for _, t := range Tenants {
		for i, role := range []string{RoleOwner, RoleClerk} {
			usr := &User{
				ID:     role + "." + t,
				Tenant: t,
				Email:  role + "@" + t + ".test",
				Name:   names[t][i],
				Role:   role,
				hash:   hash,
			}
			u.byKey[t+"\x00"+usr.Email] = usr
		}
	}
	return u, nil
}

// Authenticate returns the user of tenant with that email if password is
// theirs, else ErrBadCredentials. It takes a bcrypt comparison's time
// whether or not the user exists.
func (u *Users) Authenticate(ctx context.Context, tenant, email, password string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	usr, ok := u.byKey[tenant+"\x00"+strings.ToLower(strings.TrimSpace(email))]
	hash := u.dummy
	if ok {
		hash = usr.hash
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		return User{}, ErrBadCredentials
	}
	return *usr, nil
}

// Lookup returns the user with that id.
func (u *Users) Lookup(id string) (User, bool) {
	for _, usr := range u.byKey {
		if subtle.ConstantTimeCompare([]byte(usr.ID), []byte(id)) == 1 {
			return *usr, true
		}
	}
	return User{}, false
}

// Customer of a shop.
type Customer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Phone   string `json:"phone"`
	Balance int64  `json:"balance"`
}

// Product of a shop.
type Product struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	WeightG float64 `json:"weight_g"`
	Karat   int     `json:"karat"`
	Price   int64   `json:"price"`
}

// Invoice of a shop.
type Invoice struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Total      int64     `json:"total"`
	Items      []string  `json:"items,omitempty"`
	Created    time.Time `json:"created"`
}

// KPIs of a shop.
type KPIs struct {
	Sales     int64   `json:"sales"`
	Profit    int64   `json:"profit"`
	Customers int     `json:"customers"`
	GoldG     float64 `json:"gold_g"`
	Invoices  int     `json:"invoices"`
}

// GoldPrice is the shared market price.
type GoldPrice struct {
	USDPerOunce float64   `json:"usd_per_oz"`
	AsOf        time.Time `json:"as_of"`
}

type shop struct {
	customers map[string]Customer
	products  map[string]Product
	invoices  map[string]Invoice
	kpis      KPIs
	seq       int
}

// CatalogueOptions configure a Catalogue. The zero value is valid.
type CatalogueOptions struct {
	// Delay is how long every load takes, as a database query would; 0
	// means none. The server's default is 20ms.
	Delay time.Duration
	// Now is the clock for invoice dates. Default time.Now.
	Now func() time.Time
}

// Catalogue is the demo data source: safe for concurrent use, every read
// taking Delay (or until the context is done).
type Catalogue struct {
	opts  CatalogueOptions
	mu    sync.Mutex
	shops map[string]*shop
	loads map[string]int64
}

// NewCatalogue returns the seeded catalogue.
func NewCatalogue(opts *CatalogueOptions) *Catalogue {
	c := &Catalogue{shops: map[string]*shop{}, loads: map[string]int64{}}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	day := time.Date(2024, 3, 20, 9, 30, 0, 0, time.UTC)
	c.shops["tehran-gold"] = &shop{
		customers: map[string]Customer{"1": {ID: "1", Name: "علی احمدی", Phone: "09121234567", Balance: 75000}},
		products:  map[string]Product{"1": {ID: "1", Name: "گردنبند طلا", WeightG: 15.5, Karat: 18, Price: 150000}},
		invoices:  map[string]Invoice{"INV-2024-001": {ID: "INV-2024-001", CustomerID: "1", Total: 150000, Items: []string{"1"}, Created: day}},
		kpis:      KPIs{Sales: 25000, Profit: 5000, Customers: 8, GoldG: 350.75, Invoices: 1},
		seq:       1,
	}
	c.shops["shiraz-silver"] = &shop{
		customers: map[string]Customer{"1": {ID: "1", Name: "مریم حسینی", Phone: "09171234567", Balance: 42000}},
		products:  map[string]Product{"1": {ID: "1", Name: "دستبند نقره", WeightG: 22.0, Karat: 0, Price: 38000}},
		invoices:  map[string]Invoice{"INV-2024-001": {ID: "INV-2024-001", CustomerID: "1", Total: 38000, Items: []string{"1"}, Created: day}},
		kpis:      KPIs{Sales: 12000, Profit: 2100, Customers: 5, GoldG: 0, Invoices: 1},
		seq:       1,
	}
	return c
}

// load waits Delay (as a query would) and counts the load.
func (c *Catalogue) load(ctx context.Context, what string) error {
	if c.opts.Delay > 0 {
		t := time.NewTimer(c.opts.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	} else if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.loads[what]++
	c.mu.Unlock()
	return nil
}

// Loads returns how many loads of each kind ran ("kpis", "customer",
// "product", "invoice", "gold-price").
func (c *Catalogue) Loads() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.loads))
	for k, v := range c.loads {
		out[k] = v
	}
	return out
}

func (c *Catalogue) shop(tenant string) (*shop, error) {
	s, ok := c.shops[tenant]
	if !ok {
		return nil, fmt.Errorf("%w: tenant %q", ErrNotFound, tenant)
	}
	return s, nil
}

// KPIs loads a shop's KPIs.
func (c *Catalogue) KPIs(ctx context.Context, tenant string) (KPIs, error) {
	if err := c.load(ctx, "kpis"); err != nil {
		return KPIs{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.shop(tenant)
	if err != nil {
		return KPIs{}, err
	}
	return s.kpis, nil
}

// Customer loads one customer.
func (c *Catalogue) Customer(ctx context.Context, tenant, id string) (Customer, error) {
	return lookup(ctx, c, tenant, "customer", func(s *shop) map[string]Customer { return s.customers }, id)
}

// Product loads one product.
func (c *Catalogue) Product(ctx context.Context, tenant, id string) (Product, error) {
	return lookup(ctx, c, tenant, "product", func(s *shop) map[string]Product { return s.products }, id)
}

// Invoice loads one invoice.
func (c *Catalogue) Invoice(ctx context.Context, tenant, id string) (Invoice, error) {
	return lookup(ctx, c, tenant, "invoice", func(s *shop) map[string]Invoice { return s.invoices }, id)
}

// lookup is one load of a record of kind from the shop's table: the data
// source's delay, then the record or ErrNotFound.
func lookup[T any](ctx context.Context, c *Catalogue, tenant, kind string, table func(*shop) map[string]T, id string) (T, error) {
	var zero T
	if err := c.load(ctx, kind); err != nil {
		return zero, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.shop(tenant)
	if err != nil {
		return zero, err
	}
	v, ok := table(s)[id]
	if !ok {
		return zero, fmt.Errorf("%w: %s", ErrNotFound, kind)
	}
	return v, nil
}

// CreateInvoice stores a new invoice for an existing customer, gives it the
// next id (INV-2024-002, ...) and adds its total to the shop's sales.
func (c *Catalogue) CreateInvoice(ctx context.Context, tenant string, in Invoice) (Invoice, error) {
	if err := ctx.Err(); err != nil {
		return Invoice{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.shop(tenant)
	if err != nil {
		return Invoice{}, err
	}
	if _, ok := s.customers[in.CustomerID]; !ok {
		return Invoice{}, fmt.Errorf("%w: no customer %q", ErrInvalid, in.CustomerID)
	}
	if in.Total <= 0 || in.Total > 1e15 {
		return Invoice{}, fmt.Errorf("%w: total must be positive", ErrInvalid)
	}
	s.seq++
	in.ID = fmt.Sprintf("INV-2024-%03d", s.seq)
	in.Created = c.opts.Now().UTC()
	s.invoices[in.ID] = in
	s.kpis.Sales += in.Total
	s.kpis.Invoices++
	return in, nil
}

// GoldPrice loads the market price, shared by every shop.
func (c *Catalogue) GoldPrice(ctx context.Context) (GoldPrice, error) {
	if err := c.load(ctx, "gold-price"); err != nil {
		return GoldPrice{}, err
	}
	return GoldPrice{USDPerOunce: 2075.5, AsOf: c.opts.Now().UTC().Truncate(time.Second)}, nil
}
