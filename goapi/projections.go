package annals

import (
	"context"
	"fmt"
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
	rows, err := c.pool.Query(ctx, `
		SELECT p.projection_name, p.mode, p.enabled, p.state, p.handler, p.tables, p.event_types, p.categories,
		       p.events_behind, p.rebuild_done, p.rebuild_total, p.dead_letters, p.last_error, p.rebuilt_at
		  FROM annals.projections AS p
		 ORDER BY p.projection_name`)
	if err != nil {
		return nil, fmt.Errorf("annals: projections: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ProjectionStatus])
	if err != nil {
		return nil, fmt.Errorf("annals: projections: %w", mapError(err))
	}
	return out, nil
}

// RebuildProjection rebuilds a projection's tables from the whole history without downtime (see
// annals.rebuild_projection) and returns the number of events applied. When progress is not nil
// it is called about every interval, from another goroutine and connection, with the events done
// and the total, while the rebuild runs.
func (c *Client) RebuildProjection(ctx context.Context, name string, progress func(done, total int64), interval time.Duration) (int64, error) {
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
	err := c.pool.QueryRow(ctx, "SELECT annals.rebuild_projection($1)", name).Scan(&applied)
	close(stop)
	<-finished
	if err != nil {
		return 0, fmt.Errorf("annals: rebuild projection %q: %w", name, mapError(err))
	}
	if progress != nil {
		progress(applied, applied)
	}
	return applied, nil
}

// RunAsyncProjections moves every enabled async projection forward by at most maxEvents events
// (0 means 1000) and returns how many it processed; call it until it returns 0 to catch up.
func (c *Client) RunAsyncProjections(ctx context.Context, maxEvents int) (int64, error) {
	var n int64
	if err := c.pool.QueryRow(ctx, "SELECT annals.run_async_projections($1)", pageSize(maxEvents)).Scan(&n); err != nil {
		return 0, fmt.Errorf("annals: run async projections: %w", mapError(err))
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
	rows, err := c.pool.Query(ctx, "SELECT r.view_name, r.refreshed, r.duration, r.error FROM annals.refresh_views($1) AS r", force)
	if err != nil {
		return nil, fmt.Errorf("annals: refresh views: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ViewRefresh])
	if err != nil {
		return nil, fmt.Errorf("annals: refresh views: %w", mapError(err))
	}
	return out, nil
}
