// Command karat runs karat's demo server and checks stores.
//
//	karat serve [flags]        the jeweller API over HTTP (see `karat serve -h`)
//	karat check --store URL    verify a live store: ping, session, cache and rate-limit rounds
//	karat healthcheck          exit 0 when the local server answers /healthz (for Docker)
//	karat version
//
// It is built only from karat's public packages (drivers, store, session,
// cache, ratelimit, httpapi, httpapi/demo), as an application embedding karat
// would be. Every flag has an environment twin (KARAT_...); a flag given on
// the command line wins over its twin. A bad flag, a bad store URL or a store
// that does not answer at start is one line on standard error and exit
// status 2 (usage) or 1 (store). Logs go to standard error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: karat <command> [flags]

commands:
  serve    run the HTTP API (karat serve -h for its flags)
  check    verify a live store (karat check --store URL)
  healthcheck  exit 0 if the server on KARAT_ADDR answers /healthz (the container's HEALTHCHECK)
  version  print the version
`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, args[1:], stdout, stderr)
	case "check":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return check(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "karat", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "karat: unknown command %q (want serve, check or version)\n", args[0])
	return 2
}
