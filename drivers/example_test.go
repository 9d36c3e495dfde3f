package drivers_test

import (
	"context"
	"fmt"

	"github.com/karat-go/karat/drivers"
)

// Open a store from configuration: memory:// here; redis://host:port in
// production, the same code.
func ExampleOpen() {
	ctx := context.Background()
	s, err := drivers.Open(ctx, "memory://?max_entries=10000")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Set(ctx, "greeting", []byte("hello"), 0); err != nil {
		fmt.Println(err)
		return
	}
	v, _ := s.Get(ctx, "greeting")
	fmt.Println(string(v))

	_, err = drivers.Open(ctx, "redis://localhost:6379?color=blue")
	fmt.Println(err)
	// Output:
	// hello
	// karat/drivers: bad store URL: unknown parameter "color" (redis takes driver, client_cache)
}
