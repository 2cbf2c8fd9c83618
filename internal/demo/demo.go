// Package demo plays the inventory story of `annals demo`: it finds or starts a PostgreSQL server,
// installs Annals into a scratch database, runs each step with its SQL and checks its facts.
package demo

import (
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/annals-db/annals/internal/progress"

	"github.com/annals-db/annals/internal/connstr"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Run finds a server, creates and installs the scratch database, plays the story and cleans
// up. Cleanup runs on every path, including Ctrl-C (ctx cancelled), on a context of its own.
func Run(ctx context.Context, out io.Writer, explicit, source string, keep bool) (err error) {
	started := time.Now()
	// `annals demo | head` must not kill the demo before it cleans up: with SIGPIPE ignored, a
	// write to a closed pipe fails (and is ignored) instead.
	signal.Ignore(syscall.SIGPIPE)
	srv, err := findPostgres(ctx, explicit, source)
	if err != nil {
		var nf *notFoundError
		if errors.As(err, &nf) {
			fmt.Fprintln(os.Stderr, "annals demo: looked for PostgreSQL here:")
			for _, a := range nf.Attempts() {
				fmt.Fprintln(os.Stderr, "  -", a)
			}
		}
		return err
	}
	if srv.cluster != nil && !keep {
		defer func() {
			if stopErr := srv.cluster.Stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
	}

	admin, err := pgx.Connect(ctx, srv.adminURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", connstr.Display(srv.adminURL), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var serverVersion string
	var rolesExisted bool
	err = admin.QueryRow(ctx, `SELECT pg_catalog.current_setting('server_version'),
		EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'annals_owner')`).Scan(&serverVersion, &rolesExisted)
	if err != nil {
		return fmt.Errorf("query server version: %w", err)
	}

	dbName := "annals_demo_" + pgutil.RandomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return fmt.Errorf("create scratch database %s (the demo needs a role that may create databases): %w", dbName, err)
	}
	dbURL, err := connstr.WithDatabase(srv.adminURL, dbName)
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			printKeep(out, srv, dbURL, dbName)
			return
		}
		if dropErr := dropScratch(ctx, admin, dbName); dropErr != nil && err == nil {
			err = dropErr
		}
		if err == nil {
			fmt.Fprintf(out, "Dropped the scratch database %s", dbName)
			if srv.cluster != nil {
				fmt.Fprint(out, " and stopped the throwaway cluster")
			}
			fmt.Fprintln(out, ".")
			if !rolesExisted && srv.cluster == nil {
				fmt.Fprintln(out, "The install created the cluster-wide roles annals_owner, annals_writer, annals_reader and annals_bi;\n"+
					"they stay (other databases may use them): DROP ROLE them if you do not want Annals here.")
			}
		}
	}()

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to scratch database: %w", err)
	}
	defer pool.Close()

	fmt.Fprintln(out, "Annals demo: the inventory story, told by an event store inside PostgreSQL")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "  PostgreSQL  %s, %s\n", serverVersion, describeServer(srv))
	what := "scratch, dropped at the end"
	if keep {
		what = "scratch, kept: --keep"
	}
	fmt.Fprintf(out, "  database    %s (%s)\n", dbName, what)

	t0 := time.Now()
	res, err := annals.Migrate(ctx, pool)
	if err != nil {
		return fmt.Errorf("install Annals into %s: %w", dbName, err)
	}
	fmt.Fprintf(out, "  Annals      installed by annals.Migrate in %s: %d migrations and the functions, schema version %d\n",
		progress.Duration(time.Since(t0)), len(res.Applied), res.ToVersion)

	st := newStory(out, pool)
	if err := st.play(ctx); err != nil {
		return err
	}
	st.summary(time.Since(started))
	return nil
}

// describeServer says where the server is and how it was found, without passwords.
func describeServer(srv *pgServer) string {
	cfg, err := pgx.ParseConfig(srv.adminURL)
	if err != nil {
		return srv.origin
	}
	where := fmt.Sprintf("%s@%s:%d", cfg.User, cfg.Host, cfg.Port)
	if srv.cluster != nil {
		return fmt.Sprintf("throwaway cluster at %s\n  cluster     %s (initdb from %s)", where, srv.cluster.Dir, srv.cluster.BinDir)
	}
	return fmt.Sprintf("%s at %s", srv.origin, where)
}

// dropScratch drops the scratch database on a context of its own: the demo's may be cancelled.
func dropScratch(ctx context.Context, admin *pgx.Conn, name string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := admin.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	return nil
}

func printKeep(out io.Writer, srv *pgServer, dbURL, dbName string) {
	fmt.Fprintf(out, "Kept the scratch database %s. Connect with psql:\n\n", dbName)
	fmt.Fprintf(out, "    psql %q\n\n", dbURL)
	fmt.Fprintln(out, "  and try  SELECT stream_version, event_type, data FROM annals.read_stream('inventory-42');")
	fmt.Fprintln(out, "           SELECT * FROM inventory.item_counts;")
	fmt.Fprintln(out, "           SELECT * FROM annals.refresh_views(force => true);")
	fmt.Fprintln(out, "           SELECT * FROM inventory.movements_per_day;")
	fmt.Fprintln(out, "           SELECT * FROM annals.projections;")
	fmt.Fprintln(out, "           SELECT * FROM annals.subscription_status;")
	fmt.Fprintln(out, "           SELECT * FROM annals.read_stream('price-42', raw => true);")
	if srv.cluster != nil {
		fmt.Fprintf(out, "\nThe throwaway cluster keeps running on 127.0.0.1:%d. Stop and remove it with:\n\n    %s\n",
			srv.cluster.Port, srv.cluster.StopCommand())
		return
	}
	fmt.Fprintf(out, "\n  drop it  psql %q -c 'DROP DATABASE %s'\n", srv.adminURL, dbName)
}
