package drivers_test

import (
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/karat-go/karat/drivers/goredisstore"
	"github.com/karat-go/karat/drivers/rueidisstore"
	"github.com/karat-go/karat/store"
)

// The two Redis drivers' constructors return alike: a store.Store, whose
// capabilities are found with store.Capability (rueidisstore's concrete type
// depends on its options). This does not compile if either changes.
var (
	_ func(rueidis.Client, *rueidisstore.Options) store.Store        = rueidisstore.New
	_ func(redis.UniversalClient, *goredisstore.Options) store.Store = goredisstore.New
)
