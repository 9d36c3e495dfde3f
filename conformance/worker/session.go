package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

func init() { register("session-update", sessionUpdate) }

// fixedClock is the conformance case's clock, frozen at the instant it
// passed: the layer's clock decides deadlines, so the worker must share it.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// sessionUpdate: args NAMESPACE SECRET_HEX NOW_MS SHARDS TOKEN GOROUTINES
// (the Manager's options must match the case's). Each
// of GOROUTINES goroutines sets the field p<pid>-<i> of the session's data
// (a JSON object with an "f" map) to i through Update, reading the session
// again and retrying on ErrConflict. The result is "p<pid> <conflicts
// retried>".
func sessionUpdate(ctx context.Context, s store.Store, args []string) (string, error) {
	if len(args) != 6 {
		return "", fmt.Errorf("session-update wants NAMESPACE SECRET_HEX NOW_MS SHARDS TOKEN GOROUTINES, got %q", args)
	}
	ns, err := store.NewNamespace(args[0])
	if err != nil {
		return "", err
	}
	secret, err := hex.DecodeString(args[1])
	if err != nil {
		return "", err
	}
	now, err1 := strconv.ParseInt(args[2], 10, 64)
	shards, err2 := strconv.Atoi(args[3])
	g, err3 := strconv.Atoi(args[5])
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", err
	}
	m, err := session.New(s, [][]byte{secret}, &session.Options{Namespace: ns, Clock: fixedClock(time.UnixMilli(now)), Shards: shards})
	if err != nil {
		return "", err
	}
	token, name := args[4], "p"+strconv.Itoa(os.Getpid())
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for i := range g {
		wg.Go(func() {
			for {
				sess, err := m.Validate(ctx, token)
				if err != nil {
					errs <- err
					return
				}
				var d struct {
					Role string         `json:"role"`
					F    map[string]int `json:"f"`
				}
				if err := sess.Data(&d); err != nil {
					errs <- err
					return
				}
				if d.F == nil {
					d.F = map[string]int{}
				}
				d.F[name+"-"+strconv.Itoa(i)] = i
				_, err = m.Update(ctx, token, sess.Version, d)
				if errors.Is(err, session.ErrConflict) {
					conflicts.Add(1)
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return "", err
	}
	return name + " " + strconv.FormatInt(conflicts.Load(), 10), nil
}
