package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// healthcheck is the container's HEALTHCHECK: the distroless image has no
// curl, so the binary asks its own /healthz, on the port KARAT_ADDR names.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newEnvFlags("healthcheck")
	addr := f.fs.String("addr", "127.0.0.1:8080", "the server's address")
	if a := os.Getenv("KARAT_ADDR"); a != "" {
		if _, port, err := net.SplitHostPort(a); err == nil {
			*addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if err := f.parse(args, stdout); err != nil {
		fmt.Fprintf(stderr, "karat healthcheck: %s\n", oneLine(err))
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/healthz", nil)
	if err != nil {
		fmt.Fprintf(stderr, "karat healthcheck: %s\n", oneLine(err))
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "karat healthcheck: %s\n", oneLine(err))
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "karat healthcheck: /healthz answered %d\n", resp.StatusCode)
		return 1
	}
	return 0
}
