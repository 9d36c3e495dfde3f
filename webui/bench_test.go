package webui_test

import (
	"net/http"
	"testing"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/ratelimit"
)

// BenchmarkPages serves each page over loopback HTTP on the memory store,
// signed in, with the API policy raised out of the way. The shop page is
// measured warm: its five API calls are cache hits.
func BenchmarkPages(b *testing.B) {
	pol, err := ratelimit.ParsePolicy("api 1000000000/1m")
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"/signin", "/devices", "/shop", "/dashboard"} {
		b.Run(path[1:], func(b *testing.B) {
			s := newSite(b, &siteOptions{api: httpapi.Options{Policies: httpapi.Policies{API: pol}}})
			c := s.client(b)
			c.signIn("tehran-gold", "owner@tehran-gold.test")
			if p := c.get(path); p.status != http.StatusOK {
				b.Fatalf("%s: %d", path, p.status)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if p := c.get(path); p.status != http.StatusOK {
					b.Fatalf("%s: %d", path, p.status)
				}
			}
		})
	}
}
