// Command worker is the separate OS process that the conformance suite's
// cross-process cases start: several of them, each with its own store client
// over the same backend, prove that what holds across goroutines holds across
// processes too (one load per key, exact rate-limit counts, ...).
//
// It is not meant to be run by hand. The protocol: the suite starts it with
//
//	worker -store URL -role NAME [role arguments...]
//
// The worker opens the store, prints "ready" on a line of its own, waits for
// a line on standard input (so that every worker starts at once), runs the
// role, prints "result " and the role's one-line result, and exits 0. Any
// failure goes to standard error with a non-zero exit.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

// role is one thing a worker can do. It returns a one-line result that the
// suite parses.
type role func(ctx context.Context, s store.Store, args []string) (string, error)

// roles are registered by the files of this package, one per layer.
var roles = map[string]role{}

func register(name string, r role) {
	if _, dup := roles[name]; dup {
		panic("worker: role " + name + " registered twice")
	}
	roles[name] = r
}

func main() {
	url := flag.String("store", "", "store URL (drivers.Open)")
	name := flag.String("role", "", "what to do")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*url, *name, *timeout, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(url, name string, timeout time.Duration, args []string) error {
	r, ok := roles[name]
	if !ok {
		names := make([]string, 0, len(roles))
		for n := range roles {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("unknown role %q (have %v)", name, names)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := drivers.Open(ctx, url)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the start line: %w", err)
	}
	out, err := r(ctx, s, args)
	if err != nil {
		return err
	}
	fmt.Println("result " + out)
	return nil
}
