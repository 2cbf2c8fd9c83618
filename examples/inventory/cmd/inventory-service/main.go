// Command inventory-service serves the inventory example over HTTP and JSON (see package httpapi
// for the endpoints).
//
//	inventory-service --database-url postgres://postgres@127.0.0.1:5432/postgres --migrate
//
// Flags:
//
//	--addr              listen address (default 127.0.0.1:8080; port 0 picks a free port)
//	--database-url      PostgreSQL URL (default $DATABASE_URL)
//	--replica-url       a streaming hot standby of that database to serve GET requests from
//	                    (repeatable); GETs honour the Consistency-Token header writes answer with
//	--migrate           install or upgrade Annals (annals.Migrate) and the inventory read models
//	                    (readmodels.Install) before serving; needs a role that may create roles
//	--max-attempts      appends tried per adjustment without If-Match before a 409 (default 10)
//	--shutdown-timeout  how long in-flight requests get after SIGINT or SIGTERM (default 10s)
//
// Logs are JSON lines on stderr (log/slog): "listening" with the bound address, one "request"
// line per request (method, path, status, duration_ms, bytes, request_id), "shutting down" and
// "stopped". Without --migrate it refuses to start on a database that is not set up. On SIGINT or
// SIGTERM it stops accepting connections, lets in-flight requests finish within the timeout and
// exits 0 (1 if they did not finish, 2 for bad flags); a second signal kills it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, stop, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	addr            string
	databaseURL     string
	replicaURLs     urlList
	migrate         bool
	maxAttempts     int
	shutdownTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("inventory-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address (port 0 picks a free port)")
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL connection URL (default $DATABASE_URL)")
	fs.Var(&c.replicaURLs, "replica-url", "a hot standby to read from (repeatable)")
	fs.BoolVar(&c.migrate, "migrate", false, "install or upgrade Annals and the inventory read models before serving")
	fs.IntVar(&c.maxAttempts, "max-attempts", 10, "appends tried per adjustment without If-Match before answering 409")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests get after SIGINT or SIGTERM")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.databaseURL == "" {
		c.databaseURL = os.Getenv("DATABASE_URL")
	}
	if c.databaseURL == "" {
		return c, errors.New("no database: set --database-url or DATABASE_URL")
	}
	if c.maxAttempts < 1 || c.shutdownTimeout <= 0 {
		return c, errors.New("--max-attempts must be 1 or more and --shutdown-timeout positive")
	}
	return c, nil
}

// run serves until ctx ends (the first signal; stop then restores the default handling, so a
// second signal kills), and returns the exit code.
func run(ctx context.Context, stop func(), args []string, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "inventory-service:", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := serve(ctx, stop, cfg, log); err != nil {
		log.Error("exiting", "error", err.Error())
		return 1
	}
	return 0
}

func serve(ctx context.Context, stop func(), cfg config, log *slog.Logger) error {
	pool, err := connect(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	if cfg.migrate {
		res, err := annals.Migrate(ctx, pool)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := readmodels.Install(ctx, pool); err != nil {
			return err
		}
		log.Info("migrated", "from_version", res.FromVersion, "to_version", res.ToVersion, "applied", len(res.Applied))
	}
	var replicas []*pgxpool.Pool
	for _, u := range cfg.replicaURLs {
		// A replica that is down at start is no reason to stop: the client skips it until it answers.
		rp, err := replicaPool(ctx, u)
		if err != nil {
			return err
		}
		defer rp.Close()
		replicas = append(replicas, rp)
	}
	handler := httpapi.New(pool, httpapi.Options{Logger: log, MaxAttempts: cfg.maxAttempts, Replicas: replicas})
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = handler.Check(checkCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w (start with --migrate to set the database up)", err)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down", "timeout", cfg.shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("in-flight requests did not finish within %v: %w", cfg.shutdownTimeout, err)
	}
	log.Info("stopped")
	return nil
}

// connect opens a pool named inventory-service in pg_stat_activity and makes sure the database
// answers.
func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bad database URL: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "inventory-service"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	return pool, nil
}

// urlList is a repeatable string flag.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(v string) error {
	if v == "" {
		return errors.New("empty URL")
	}
	*l = append(*l, v)
	return nil
}

// replicaPool opens a pool on a replica without waiting for it to answer.
func replicaPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bad replica URL: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "inventory-service"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
