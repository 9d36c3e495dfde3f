package rueidisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/karat-go/karat/drivers/rueidisstore"
	"github.com/karat-go/karat/store"
)

func ExampleNew() {
	srv, err := miniredis.Run() // stands in for a real Redis
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// miniredis has no client-side caching and answers CLUSTER SLOTS: turn
	// the cache off and force a single-node client. Against a real Redis,
	// keep the cache and set ConnWriteTimeout (see ExampleCachedStore_GetCached).
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{srv.Addr()},
		DisableCache:      true,
		ForceSingleClient: true,
	})
	if err != nil {
		panic(err)
	}
	defer client.Close() // the client is yours: the store leaves it open
	s := rueidisstore.New(client, &rueidisstore.Options{DisableCache: true})
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
	_, cached := store.Capability[store.CachedReader](s)
	fmt.Println(string(v), ttl, cached)
	// Output: hello 1m0s false
}

// This example needs a Redis server on localhost:6379, so it is compiled but
// not run.
func ExampleCachedStore_GetCached() {
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{"localhost:6379"},
		// Drop a silently partitioned connection, and the cache it feeds,
		// within seconds; GetCached's bound holds without it.
		ConnWriteTimeout: 2 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	s := rueidisstore.New(client, nil).(*rueidisstore.CachedStore)

	ctx := context.Background()
	// The gold price may be up to 5 seconds old; most reads never leave
	// the process.
	price, err := s.GetCached(ctx, "karat:gold-price", 5*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(price))
}
