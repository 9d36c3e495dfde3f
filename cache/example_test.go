package cache_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/karat-go/karat/cache"
	"github.com/karat-go/karat/drivers/memstore"
)

type Customer struct {
	ID   string
	Name string
}

// The jeweller's customer cache: one load per key, whatever the number of
// concurrent requests, and "not found" remembered for a minute.
func Example() {
	ctx := context.Background()
	s := memstore.New(nil) // or drivers.Open(ctx, "redis://...")
	defer s.Close()
	customers, err := cache.New[Customer](s, cache.Customer, nil)
	if err != nil {
		panic(err)
	}
	load := func(ctx context.Context) (Customer, error) {
		fmt.Println("loading from the database")
		return Customer{ID: "c42", Name: "Ada"}, nil
	}
	for range 2 {
		c, err := customers.GetOrLoad(ctx, "shop-1", "c42", load)
		if err != nil {
			panic(err)
		}
		fmt.Println(c.Name)
	}
	_, err = customers.Get(ctx, "shop-2", "c42")
	fmt.Println("another shop:", errors.Is(err, cache.ErrNotFound))
	// Output:
	// loading from the database
	// Ada
	// Ada
	// another shop: true
}

// The six presets of the jeweller platform, ready to use.
func Example_presets() {
	for _, p := range []cache.Policy{cache.KPI, cache.Customer, cache.Product, cache.Invoice, cache.Permissions, cache.GoldPrice} {
		fmt.Printf("%-11s TTL %-6v global %v\n", p.Name, p.TTL, p.Global)
	}
	// Output:
	// kpi         TTL 1m0s   global false
	// customer    TTL 1h0m0s global false
	// product     TTL 1h0m0s global false
	// invoice     TTL 5m0s   global false
	// permissions TTL 1h0m0s global false
	// gold-price  TTL 5m0s   global true
}

// A shop's data changed wholesale (an import, say): one call invalidates
// every entry of that shop, in every policy, whatever their number.
func ExampleCache_InvalidateTenant() {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	kpis, _ := cache.New[int](s, cache.KPI, nil)
	products, _ := cache.New[string](s, cache.Product, nil)
	_ = kpis.Set(ctx, "shop-1", "revenue", 1200)
	_ = products.Set(ctx, "shop-1", "ring-7", "Gold ring")
	_ = products.Set(ctx, "shop-2", "ring-7", "Silver ring")

	if err := kpis.InvalidateTenant(ctx, "shop-1"); err != nil {
		panic(err)
	}
	_, err := products.Get(ctx, "shop-1", "ring-7")
	fmt.Println("shop-1:", err)
	v, _ := products.Get(ctx, "shop-2", "ring-7")
	fmt.Println("shop-2:", v)
	// Output:
	// shop-1: karat/cache: not found
	// shop-2: Silver ring
}

// Invalidate one kind of entry of a shop: a policy's name is a tag of all
// its entries.
func ExampleCache_InvalidateTag() {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	kpis, _ := cache.New[int](s, cache.KPI, nil)
	invoices, _ := cache.New[string](s, cache.Invoice, nil)
	_ = kpis.Set(ctx, "shop-1", "revenue", 1200)
	_ = invoices.Set(ctx, "shop-1", "inv-1", "draft")

	_ = kpis.InvalidateTag(ctx, "shop-1", "kpi")
	_, err := kpis.Get(ctx, "shop-1", "revenue")
	fmt.Println("kpi:", errors.Is(err, cache.ErrNotFound))
	v, _ := invoices.Get(ctx, "shop-1", "inv-1")
	fmt.Println("invoice:", v)
	// Output:
	// kpi: true
	// invoice: draft
}

// The gold price is shared by every shop: a Global policy takes tenant "".
func Example_goldPrice() {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	gold, _ := cache.New[float64](s, cache.GoldPrice, nil)
	price, _ := gold.GetOrLoad(ctx, "", "XAU-EUR", func(context.Context) (float64, error) {
		return 2210.40, nil // the price feed
	})
	fmt.Println(price)
	_, err := gold.Get(ctx, "shop-1", "XAU-EUR")
	fmt.Println(errors.Is(err, cache.ErrInvalidTenant))
	// Output:
	// 2210.4
	// true
}

// Stats count local and store hits, misses, errors, loads and coalesced
// loads.
func ExampleCache_Stats() {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	perms, _ := cache.New[[]string](s, cache.Permissions, nil)
	load := func(context.Context) ([]string, error) { return []string{"invoices:write"}, nil }
	for range 3 {
		_, _ = perms.GetOrLoad(ctx, "shop-1", "user-9", load)
	}
	st := perms.Stats()
	fmt.Printf("misses %d, loads %d, store hits %d, local hits %d, hit rate %.2f\n",
		st.Misses, st.Loads, st.Hits, st.LocalHits, st.HitRate())
	// Output:
	// misses 1, loads 1, store hits 1, local hits 1, hit rate 0.67
}
