package demo

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUsers(t *testing.T) {
	u, err := NewUsers("s3cret pass", 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := u.Authenticate(ctx, "tehran-gold", " Owner@Tehran-Gold.test ", "s3cret pass")
	if err != nil || got.Role != RoleOwner || got.Tenant != "tehran-gold" {
		t.Fatalf("owner login: %+v, %v", got, err)
	}
	for _, c := range [][3]string{
		{"tehran-gold", "owner@tehran-gold.test", "wrong"},
		{"tehran-gold", "nobody@tehran-gold.test", "s3cret pass"},
		{"shiraz-silver", "owner@tehran-gold.test", "s3cret pass"},
		{"", "", ""},
	} {
		if _, err := u.Authenticate(ctx, c[0], c[1], c[2]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%v: %v, want ErrBadCredentials", c, err)
		}
	}
	if _, err := NewUsers("", 4); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty password: %v", err)
	}
	if usr, ok := u.Lookup("clerk.shiraz-silver"); !ok || usr.Email != "clerk@shiraz-silver.test" {
		t.Errorf("Lookup: %+v %v", usr, ok)
	}
}

func TestCatalogue(t *testing.T) {
	c := NewCatalogue(&CatalogueOptions{Delay: time.Millisecond})
	ctx := context.Background()
	cu, err := c.Customer(ctx, "tehran-gold", "1")
	if err != nil || cu.Name != "علی احمدی" || cu.Balance != 75000 {
		t.Fatalf("customer: %+v %v", cu, err)
	}
	p, _ := c.Product(ctx, "tehran-gold", "1")
	inv, _ := c.Invoice(ctx, "tehran-gold", "INV-2024-001")
	k, _ := c.KPIs(ctx, "tehran-gold")
	g, _ := c.GoldPrice(ctx)
	if p.Name != "گردنبند طلا" || p.WeightG != 15.5 || inv.Total != 150000 || k.Sales != 25000 || k.GoldG != 350.75 || g.USDPerOunce != 2075.5 {
		t.Fatalf("catalogue values: %+v %+v %+v %+v", p, inv, k, g)
	}
	if _, err := c.Customer(ctx, "shiraz-silver", "2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown customer: %v", err)
	}
	if _, err := c.KPIs(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
	n, err := c.CreateInvoice(ctx, "tehran-gold", Invoice{CustomerID: "1", Total: 500})
	if err != nil || n.ID != "INV-2024-002" {
		t.Fatalf("create: %+v %v", n, err)
	}
	if k, _ := c.KPIs(ctx, "tehran-gold"); k.Sales != 25500 || k.Invoices != 2 {
		t.Errorf("KPIs after an invoice: %+v", k)
	}
	if _, err := c.CreateInvoice(ctx, "tehran-gold", Invoice{CustomerID: "9", Total: 5}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invoice for an unknown customer: %v", err)
	}
	if _, err := c.CreateInvoice(ctx, "tehran-gold", Invoice{CustomerID: "1", Total: -5}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative total: %v", err)
	}
	if l := c.Loads(); l["customer"] != 2 || l["kpis"] != 3 {
		t.Errorf("loads %v", l)
	}
	// A load honours its context instead of sleeping through it.
	slow := NewCatalogue(&CatalogueOptions{Delay: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := slow.KPIs(cctx, "tehran-gold"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow load under a 10ms deadline: %v", err)
	}
}
