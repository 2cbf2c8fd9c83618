package annals

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProjectionStatus is one row of the annals.projections view.
type ProjectionStatus struct {
	Name    string `db:"projection_name"`
	Mode    string `db:"mode"`
	Enabled bool   `db:"enabled"`
	// State is active, failing, disabled or rebuilding.
	State      string   `db:"state"`
	Handler    string   `db:"handler"`
	Tables     []string `db:"tables"`
	EventTypes []string `db:"event_types"`
	Categories []string `db:"categories"`
	// EventsBehind is an async projection's lag, counted up to 100000.
	EventsBehind int64 `db:"events_behind"`
	// RebuildDone and RebuildTotal report a running rebuild's progress.
	RebuildDone  *int64     `db:"rebuild_done"`
	RebuildTotal *int64     `db:"rebuild_total"`
	DeadLetters  int64      `db:"dead_letters"`
	LastError    *string    `db:"last_error"`
	RebuiltAt    *time.Time `db:"rebuilt_at"`
}

// Projections lists every registered projection with its state, lag and last error.
func (c *Client) Projections(ctx context.Context) ([]ProjectionStatus, error) {
	return routed(ctx, c, func(db dbtx) ([]ProjectionStatus, error) { return projections(ctx, db) })
}

// ProjectionsTx is Projections inside the caller's transaction.
func (c *Client) ProjectionsTx(ctx context.Context, tx pgx.Tx) ([]ProjectionStatus, error) {
	return projections(ctx, tx)
}

func projections(ctx context.Context, db dbtx) ([]ProjectionStatus, error) {
	rows, err := db.Query(ctx, `
		SELECT p.projection_name, p.mode, p.enabled, p.state, p.handler, p.tables, p.event_types, p.categories,
		       p.events_behind, p.rebuild_done, p.rebuild_total, p.dead_letters, p.last_error, p.rebuilt_at
		  FROM annals.projections AS p
		 ORDER BY p.projection_name`)
	if err != nil {
		return nil, wrapf(mapError(err), "projections")
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ProjectionStatus])
	if err != nil {
		return nil, wrapf(mapError(err), "projections")
	}
	return out, nil
}

// SetProjectionEnabled disables (false) or re-enables (true) a projection through
// annals.set_projection_enabled. A disabled inline projection misses the events appended
// meanwhile: rebuild it after enabling it again. A disabled async one simply waits. ErrNotFound
// for an unknown projection. Needs the annals_owner role.
func (c *Client) SetProjectionEnabled(ctx context.Context, name string, enabled bool) error {
	return setProjectionEnabled(ctx, c.db(ctx), name, enabled)
}

// SetProjectionEnabledTx is SetProjectionEnabled inside the caller's transaction. Appends wait
// for that transaction to end (the inline dispatch is regenerated under a lock on the events
// table): keep it short.
func (c *Client) SetProjectionEnabledTx(ctx context.Context, tx pgx.Tx, name string, enabled bool) error {
	return setProjectionEnabled(ctx, tx, name, enabled)
}

func setProjectionEnabled(ctx context.Context, db dbtx, name string, enabled bool) error {
	if _, err := db.Exec(ctx, "SELECT annals.set_projection_enabled($1, $2)", name, enabled); err != nil {
		return wrapf(mapError(err), "set projection %q enabled=%t", name, enabled)
	}
	return nil
}

// DropProjection unregisters a projection through annals.drop_projection; its tables and handler
// stay (drop them yourself), and an async one's checkpoint and dead letters go with it.
// ErrNotFound for an unknown projection. Needs the annals_owner role.
func (c *Client) DropProjection(ctx context.Context, name string) error {
	return dropProjection(ctx, c.db(ctx), name)
}

// DropProjectionTx is DropProjection inside the caller's transaction (see SetProjectionEnabledTx
// about appends waiting for it).
func (c *Client) DropProjectionTx(ctx context.Context, tx pgx.Tx, name string) error {
	return dropProjection(ctx, tx, name)
}

func dropProjection(ctx context.Context, db dbtx, name string) error {
	if _, err := db.Exec(ctx, "SELECT annals.drop_projection($1)", name); err != nil {
		return wrapf(mapError(err), "drop projection %q", name)
	}
	return nil
}

// RebuildProjection rebuilds a projection's tables from the whole history without downtime (see
// annals.rebuild_projection) and returns the number of events applied. When progress is not nil
// it is called about every interval, from another goroutine and connection, with the events done
// and the total, while the rebuild runs. ErrNotFound for an unknown projection.
func (c *Client) RebuildProjection(ctx context.Context, name string, progress func(done, total int64), interval time.Duration) (int64, error) {
	return c.rebuildProjection(ctx, c.db(ctx), name, progress, interval)
}

// RebuildProjectionTx is RebuildProjection inside the caller's transaction: the rebuilt tables
// appear when the caller commits. The rebuild's last step locks the events table against appends
// (SHARE), and the caller's transaction keeps that lock until it ends: commit right after it.
// Progress is still read over the client's pool.
func (c *Client) RebuildProjectionTx(ctx context.Context, tx pgx.Tx, name string, progress func(done, total int64), interval time.Duration) (int64, error) {
	return c.rebuildProjection(ctx, tx, name, progress, interval)
}

func (c *Client) rebuildProjection(ctx context.Context, db dbtx, name string, progress func(done, total int64), interval time.Duration) (int64, error) {
	stop := make(chan struct{})
	finished := make(chan struct{})
	if progress != nil {
		go func() {
			defer close(finished)
			t := time.NewTicker(max(interval, 50*time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
					var done, total *int64
					err := c.pool.QueryRow(ctx, `SELECT p.rebuild_done, p.rebuild_total FROM annals.projections AS p
						WHERE p.projection_name = $1`, name).Scan(&done, &total)
					if err == nil && done != nil && total != nil {
						progress(*done, *total)
					}
				}
			}
		}()
	} else {
		close(finished)
	}
	var applied int64
	err := db.QueryRow(ctx, "SELECT annals.rebuild_projection($1)", name).Scan(&applied)
	close(stop)
	<-finished
	if err != nil {
		return 0, wrapf(mapError(err), "rebuild projection %q", name)
	}
	if progress != nil {
		progress(applied, applied)
	}
	return applied, nil
}

// RunAsyncProjections moves every enabled async projection forward by at most maxEvents events
// (0 means 1000) and returns how many it processed; call it until it returns 0 to catch up.
func (c *Client) RunAsyncProjections(ctx context.Context, maxEvents int) (int64, error) {
	return runAsyncProjections(ctx, c.db(ctx), maxEvents)
}

// RunAsyncProjectionsTx is RunAsyncProjections inside the caller's transaction: the handlers'
// writes and the checkpoints commit with it.
func (c *Client) RunAsyncProjectionsTx(ctx context.Context, tx pgx.Tx, maxEvents int) (int64, error) {
	return runAsyncProjections(ctx, tx, maxEvents)
}

func runAsyncProjections(ctx context.Context, db dbtx, maxEvents int) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, "SELECT annals.run_async_projections($1)", pageSize(maxEvents)).Scan(&n); err != nil {
		return 0, wrapf(mapError(err), "run async projections")
	}
	return n, nil
}

// ViewRefresh is one row of annals.refresh_views.
type ViewRefresh struct {
	View      string         `db:"view_name"`
	Refreshed bool           `db:"refreshed"`
	Duration  *time.Duration `db:"duration"`
	Error     *string        `db:"error"`
}

// RefreshViews refreshes the registered materialized views that are due (all with force),
// CONCURRENTLY, and reports each.
func (c *Client) RefreshViews(ctx context.Context, force bool) ([]ViewRefresh, error) {
	return refreshViews(ctx, c.db(ctx), force)
}

// RefreshViewsTx is RefreshViews inside the caller's transaction.
func (c *Client) RefreshViewsTx(ctx context.Context, tx pgx.Tx, force bool) ([]ViewRefresh, error) {
	return refreshViews(ctx, tx, force)
}

func refreshViews(ctx context.Context, db dbtx, force bool) ([]ViewRefresh, error) {
	rows, err := db.Query(ctx, "SELECT r.view_name, r.refreshed, r.duration, r.error FROM annals.refresh_views($1) AS r", force)
	if err != nil {
		return nil, wrapf(mapError(err), "refresh views")
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ViewRefresh])
	if err != nil {
		return nil, wrapf(mapError(err), "refresh views")
	}
	return out, nil
}
