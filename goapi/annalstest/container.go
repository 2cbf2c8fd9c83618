package annalstest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

// startContainer is the fallback when no server is configured or running locally: a disposable
// PostgreSQL 15 in Docker, left for testcontainers' reaper to remove when the process exits.
func startContainer() (string, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return "", errors.New("testcontainers: docker not installed")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		return "", errors.New("testcontainers: no Docker engine running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := tcpostgres.Run(ctx, "postgres:15",
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").
			WithOccurrence(2).WithStartupTimeout(2*time.Minute)),
	)
	if err != nil {
		return "", fmt.Errorf("testcontainers: %w", err)
	}
	return c.ConnectionString(ctx, "sslmode=disable")
}
