package goredisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/karat-go/karat/drivers/goredisstore"
)

func ExampleNew() {
	srv, err := miniredis.Run() // stands in for a real Redis
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// The client is yours (with your hooks, say redisotel): the store leaves
	// it open on Close. ContextTimeoutEnabled makes go-redis honour deadlines.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	defer client.Close()
	s := goredisstore.New(client, nil)
	defer s.Close()

	ctx := context.Background()
	if err := s.Set(ctx, "karat:greeting", []byte("hello"), time.Minute); err != nil {
		panic(err)
	}
	v, err := s.Get(ctx, "karat:greeting")
	if err != nil {
		panic(err)
	}
	ttl, err := s.TTL(ctx, "karat:greeting")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(v), ttl)
	// Output: hello 1m0s
}
