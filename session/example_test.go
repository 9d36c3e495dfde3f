package session_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/session"
)

// A shop owner logs in on two devices, checks a request, looks at the
// "your devices" page, and logs out everywhere else.
func Example() {
	ctx := context.Background()
	s := memstore.New(nil) // redis://... in production: drivers.Open
	defer s.Close()
	secret := []byte("load me from your secret store, 32 bytes or more")
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)) // nil Options: the machine's clock
	m, err := session.New(s, [][]byte{secret}, &session.Options{Clock: clock})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Login: hand the token to the client (a cookie); the store keeps only its HMAC.
	laptop, _, err := m.Create(ctx, "ann", "shop-7", session.Meta{
		Device: "Firefox on the shop laptop", UserAgent: "Mozilla/5.0 ...", IP: "192.0.2.10",
		Data: map[string]string{"role": "owner"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	clock.Advance(time.Minute)
	if _, _, err := m.Create(ctx, "ann", "shop-7", session.Meta{Device: "Safari on Ann's phone", IP: "198.51.100.20"}); err != nil {
		fmt.Println(err)
		return
	}

	// Every request: validate the token.
	sess, err := m.Validate(ctx, laptop)
	if err != nil {
		fmt.Println(err)
		return
	}
	var data map[string]string
	_ = sess.Data(&data)
	fmt.Println(sess.User, sess.Tenant, data["role"])

	// "Your devices", oldest first.
	devices, _ := m.List(ctx, "ann")
	for _, d := range devices {
		fmt.Println("-", d.Device)
	}

	// "Log out everywhere else".
	n, _ := m.RevokeOthers(ctx, "ann", laptop)
	fmt.Println("ended", n)
	devices, _ = m.List(ctx, "ann")
	fmt.Println(len(devices), "device left:", devices[0].Device)

	_, err = m.Validate(ctx, "not-a-token")
	fmt.Println(errors.Is(err, session.ErrNotFound))
	// Output:
	// ann shop-7 owner
	// - Firefox on the shop laptop
	// - Safari on Ann's phone
	// ended 1
	// 1 device left: Firefox on the shop laptop
	// true
}

// Update is optimistic: pass the version you read, retry on ErrConflict.
func ExampleManager_Update() {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	m, _ := session.New(s, [][]byte{[]byte("load me from your secret store, 32 bytes or more")}, nil)
	token, _, _ := m.Create(ctx, "ann", "shop-7", session.Meta{Data: map[string]int{"cart": 1}})

	for {
		sess, err := m.Validate(ctx, token)
		if err != nil {
			fmt.Println(err)
			return
		}
		var d map[string]int
		_ = sess.Data(&d)
		d["cart"]++
		if _, err := m.Update(ctx, token, sess.Version, d); errors.Is(err, session.ErrConflict) {
			continue // someone else wrote first: read again
		} else if err != nil {
			fmt.Println(err)
			return
		}
		break
	}
	sess, _ := m.Validate(ctx, token)
	fmt.Println(string(sess.RawData()), "version", sess.Version)
	// Output:
	// {"cart":2} version 2
}

// Rotate on a change of privilege; with a grace, the old token keeps
// working (read-only) for in-flight requests.
func ExampleManager_Rotate() {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	defer s.Close()
	m, _ := session.New(s, [][]byte{[]byte("load me from your secret store, 32 bytes or more")},
		&session.Options{Clock: clock, RotationGrace: 10 * time.Second})
	old, _, _ := m.Create(ctx, "ann", "shop-7", session.Meta{})

	fresh, _, _ := m.Rotate(ctx, old)
	sess, err := m.Validate(ctx, old)
	fmt.Println(err == nil, sess.InGrace)
	clock.Advance(10 * time.Second)
	_, err = m.Validate(ctx, old)
	fmt.Println(errors.Is(err, session.ErrNotFound))
	_, err = m.Validate(ctx, fresh)
	fmt.Println(err == nil)
	// Output:
	// true true
	// true
	// true
}
