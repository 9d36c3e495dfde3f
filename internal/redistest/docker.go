//go:build docker

package redistest

import (
	"context"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// With the docker build tag, Single starts a redis:7 container when no
// redis-server binary is installed. Not exercised on machines without a
// Docker engine (karat's development machines among them).
func init() {
	dockerSingle = func() (*Server, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image:        "redis:7",
				ExposedPorts: []string{"6379/tcp"},
				Cmd:          []string{"redis-server", "--save", "", "--appendonly", "no"},
				WaitingFor:   wait.ForLog("Ready to accept connections"),
			},
			Started: true,
		})
		if err != nil {
			return nil, err
		}
		endpoint, err := c.PortEndpoint(ctx, "6379/tcp", "")
		if err != nil {
			_ = c.Terminate(context.Background())
			return nil, err
		}
		procMu.Lock()
		containers = append(containers, func() { _ = c.Terminate(context.Background()) })
		procMu.Unlock()
		return &Server{Addr: endpoint, URL: "redis://" + endpoint, Owned: true}, nil
	}
}
