package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// Keys built from untrusted parts cannot forge one another, glob in SCAN, or
// pick a cluster slot; a hash tag groups the keys a script touches.
func ExampleTaggedKey() {
	tenant := "shop*{42}\n"
	sess, _ := store.TaggedKey("user-7", "sess", tenant)
	index, _ := store.TaggedKey("user-7", "index")
	fmt.Println(sess)
	fmt.Println(store.Slot(sess) == store.Slot(index))
	_, err := store.Key("tenant", string(make([]byte, 10<<20)))
	fmt.Println(errors.Is(err, store.ErrInvalidKey))
	// Output:
	// {user-7}:sess:shop%2A%7B42%7D%0A
	// true
	// true
}

// A script has a Lua body for Redis and a Go body for the memory driver; the
// two must agree, which conformance.CheckScript checks.
func ExampleNewScript() {
	// Set KEYS[1] to ARGV[1] only if it holds less; return what it holds.
	raise := store.NewScript("raise", `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if want > cur then redis.call('SET', KEYS[1], ARGV[1]); cur = want end
return cur`,
		func(v store.ScriptView, keys, args []string) (store.Value, error) {
			cur := int64(0)
			if b, err := v.Get(keys[0]); err == nil {
				cur, _ = strconv.ParseInt(string(b), 10, 64)
			} else if !errors.Is(err, store.ErrNotFound) {
				return store.Value{}, err
			}
			want, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return store.Value{}, &store.ScriptError{Message: "BADARG " + args[0]}
			}
			if want > cur {
				if err := v.Set(keys[0], []byte(args[0]), 0); err != nil {
					return store.Value{}, err
				}
				cur = want
			}
			return store.IntValue(cur), nil
		})
	ctx := context.Background()
	s := memstore.New(nil) // runs the Go body; a Redis driver runs the Lua one
	for _, arg := range []string{"5", "3", "9"} {
		v, _ := s.Eval(ctx, raise, []string{"high-water"}, arg)
		fmt.Println(v)
	}
	_, err := s.Eval(ctx, raise, []string{"high-water"}, "x")
	fmt.Println(err)
	// Output:
	// 5
	// 5
	// 9
	// BADARG x
}

// A ttl above store.MaxTTL, such as math.MaxInt64 for "forever", is clamped
// to MaxTTL: the key is kept for about 292 years, on every driver.
func ExampleMaxTTL() {
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	defer s.Close()
	ctx := context.Background()
	_ = s.Set(ctx, "k", []byte("v"), math.MaxInt64)
	clock.Advance(100 * 365 * 24 * time.Hour)
	ttl, err := s.TTL(ctx, "k")
	fmt.Println(err, ttl == store.MaxTTL-100*365*24*time.Hour)
	// Output:
	// <nil> true
}
