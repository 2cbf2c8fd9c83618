package demo

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/internal/connstr"
	"github.com/annals-db/annals/internal/pgcluster"
)

// noLocalEnv, when set to a non-empty value, makes the demo skip the local server and go straight
// to a throwaway cluster. It exists for tests of that path; it is deliberately not a flag.
const noLocalEnv = "ANNALS_DEMO_NO_LOCAL"

// pgServer is a PostgreSQL server the demo may create databases on.
type pgServer struct {
	// adminURL connects to a maintenance database as a role that may create databases and roles.
	adminURL string
	// origin says how it was found, for the output: "--database-url", "local server", ...
	origin string
	// cluster is set when the demo started the server itself.
	cluster *pgcluster.Cluster
}

// localCandidates are the local servers the demo tries, in order, when no URL is given.
func localCandidates() []string {
	c := []string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"host=/var/run/postgresql user=postgres dbname=postgres",
	}
	if u, err := user.Current(); err == nil && u.Username != "postgres" && u.Username != "" {
		c = append(c, "host=/var/run/postgresql user="+u.Username+" dbname=postgres")
	}
	return c
}

// findPostgres returns a server for the demo: the explicit URL if there is one (no fallback: the
// caller asked for it), else a local server whose role may create databases and roles, else a
// throwaway cluster started from the installed server binaries. When nothing works the error says
// what was tried and how to fix it.
func findPostgres(ctx context.Context, explicit, explicitSource string) (*pgServer, error) {
	if explicit != "" {
		if err := probe(ctx, explicit, false); err != nil {
			return nil, fmt.Errorf("cannot use %s %s: %w (is the server running and the URL right?)",
				explicitSource, connstr.Display(explicit), err)
		}
		return &pgServer{adminURL: explicit, origin: explicitSource}, nil
	}
	var tried []string
	if os.Getenv(noLocalEnv) == "" {
		for _, c := range localCandidates() {
			err := probe(ctx, c, true)
			if err == nil {
				return &pgServer{adminURL: c, origin: "local server"}, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			tried = append(tried, fmt.Sprintf("%s: %v", connstr.Display(c), err))
		}
	} else {
		tried = append(tried, fmt.Sprintf("local servers: skipped (%s is set)", noLocalEnv))
	}

	cl, err := pgcluster.Start(ctx, pgcluster.Options{Prefix: "annals-demo-"})
	if err == nil {
		return &pgServer{adminURL: cl.URL("postgres"), origin: "throwaway cluster", cluster: cl}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	tried = append(tried, "throwaway cluster: "+err.Error())
	return nil, &notFoundError{tried: tried}
}

// notFoundError lists every attempt; its Error is one line, Attempts the details.
type notFoundError struct{ tried []string }

func (e *notFoundError) Error() string {
	return "no PostgreSQL to run the demo on; pass --database-url postgres://USER@HOST:PORT/postgres " +
		"(a role that may create databases and roles), start the local server (e.g. `service postgresql start`), " +
		"or install PostgreSQL 15 (`apt-get install postgresql-15`) so the demo can start a throwaway cluster"
}

// Attempts says what was tried, one line each.
func (e *notFoundError) Attempts() []string { return e.tried }

// probe connects and, when needCreate, checks that the role may create databases and roles.
func probe(ctx context.Context, connString string, needCreate bool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return connstr.ShortErr(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !needCreate {
		return conn.Ping(ctx)
	}
	var super, createDB, createRole bool
	var name string
	err = conn.QueryRow(ctx, `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole
		FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&name, &super, &createDB, &createRole)
	if err != nil {
		return err
	}
	if !super && !(createDB && createRole) {
		return fmt.Errorf("connected as %s, but that role may not create databases and roles", name)
	}
	return nil
}
