//go:build docker

package redistest

import (
	"context"
	"net"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

func init() { dockerSingle = startDockerSingle }

// startDockerSingle runs redis:7 in a container, for machines with Docker
// but no redis-server binary.
func startDockerSingle() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "redis:7",
			Cmd:          []string{"redis-server", "--save", "", "--appendonly", "no"},
			ExposedPorts: []string{"6379/tcp"},
			WaitingFor:   wait.ForLog("Ready to accept connections"),
		},
		Started: true,
	})
	if c != nil {
		onStop(func() { _ = testcontainers.TerminateContainer(c) })
	}
	if err != nil {
		return nil, err
	}
	host, err := c.Host(ctx)
	if err != nil {
		return nil, err
	}
	port, err := c.MappedPort(ctx, "6379/tcp")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, port.Port())
	return &Server{Addr: addr, URL: "redis://" + addr, Owned: true}, nil
}
