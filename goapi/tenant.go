package annals

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// setTenantSQL sets the tenant for the rest of the (implicit) transaction only: a pooled
// connection, or a PgBouncer server connection in transaction mode, keeps no tenant between calls.
const setTenantSQL = "SELECT pg_catalog.set_config('annals.tenant', $1, true)"

type tenantKey struct{}

// WithTenant returns a context whose calls of a Client run under tenant, whatever the Client's
// ClientOptions.Tenant; "" runs them with no tenant (untenanted streams only). See the README's
// "Tenants". The …Tx calls run in the caller's transaction and ignore it: call SetTenant on the
// transaction first.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant WithTenant put into ctx, and whether it did.
func TenantFrom(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(tenantKey{}).(string)
	return t, ok
}

// SetTenant calls annals.set_tenant in tx (or on any connection): the rest of the session, a
// transaction's work included, runs under tenant ("" clears it). Within a transaction that has
// written, or whose tenant set_tenant already set, a different tenant is refused (ErrTenantSwitch,
// ST424).
func SetTenant(ctx context.Context, tx Querier, tenant string) error {
	var set *string
	if err := tx.QueryRow(ctx, "SELECT annals.set_tenant($1)", tenant).Scan(&set); err != nil {
		return wrapf(mapError(err), "set tenant %q", tenant)
	}
	return nil
}

// Querier is what SetTenant needs: a pgx.Tx, *pgx.Conn, *pgxpool.Conn or *pgxpool.Pool has it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tenantFor is the tenant a call with ctx runs under, and whether one must be set at all (false:
// the client has none and ctx overrides nothing, so the call goes out exactly as without tenancy).
func (c *Client) tenantFor(ctx context.Context) (string, bool) {
	if t, ok := TenantFrom(ctx); ok {
		return t, true
	}
	return c.tenant, c.tenant != ""
}

// on returns db for a call with ctx: db itself without a tenant, else db with the tenant set in
// front of every statement, in the same round trip and implicit transaction (a pipelined batch).
func (c *Client) on(ctx context.Context, db dbtx) dbtx {
	t, ok := c.tenantFor(ctx)
	if !ok {
		return db
	}
	b, isBatcher := db.(batcher)
	if !isBatcher {
		return db
	}
	return tenantDB{db: b, tenant: t}
}

// db is the primary for a call with ctx.
func (c *Client) db(ctx context.Context) dbtx { return c.on(ctx, c.pool) }

// tenantStatement queues the statement that sets ctx's tenant in front of a batch run in a
// transaction the client began itself (the subscriber's).
func (c *Client) tenantStatement(ctx context.Context, b *pgx.Batch) {
	if t, ok := c.tenantFor(ctx); ok {
		b.Queue(setTenantSQL, t)
	}
}

type batcher interface {
	dbtx
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// tenantDB runs each statement as a two-statement batch: set_config(annals.tenant, local), then the
// statement. One round trip, one implicit transaction, so it works through PgBouncer's transaction
// mode too.
type tenantDB struct {
	db     batcher
	tenant string
}

func (t tenantDB) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(setTenantSQL, t.tenant)
	b.Queue(sql, args...)
	br := t.db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

func (t tenantDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t tenantDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t tenantDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	br, err := t.send(ctx, sql, args)
	if err != nil {
		return errRow{err: err}
	}
	return batchRow{br: br}
}

// batchRows closes the batch (releasing a pooled connection) when the rows end or are closed.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// EnableTenancy calls annals.enable_tenancy: row-level security on the store's tables. The pool's
// role must be a superuser where the history guard is installed (ST401 otherwise), else a member
// of annals_owner. It reports whether it turned tenancy on now (false: it was on already).
func (c *Client) EnableTenancy(ctx context.Context) (bool, error) {
	return enableTenancy(ctx, c.pool)
}

// EnableTenancyTx is EnableTenancy inside the caller's transaction.
func (c *Client) EnableTenancyTx(ctx context.Context, tx pgx.Tx) (bool, error) {
	return enableTenancy(ctx, tx)
}

func enableTenancy(ctx context.Context, db dbtx) (bool, error) {
	var created bool
	if err := db.QueryRow(ctx, "SELECT annals.enable_tenancy()").Scan(&created); err != nil {
		return false, wrapf(mapError(err), "enable tenancy")
	}
	return created, nil
}

// TenancyEnabled reports whether annals.enable_tenancy has turned tenancy on.
func (c *Client) TenancyEnabled(ctx context.Context) (bool, error) {
	return tenancyEnabled(ctx, c.pool)
}

// TenancyEnabledTx is TenancyEnabled inside the caller's transaction.
func (c *Client) TenancyEnabledTx(ctx context.Context, tx pgx.Tx) (bool, error) {
	return tenancyEnabled(ctx, tx)
}

func tenancyEnabled(ctx context.Context, db dbtx) (bool, error) {
	var on bool
	if err := db.QueryRow(ctx, "SELECT annals.tenancy_enabled()").Scan(&on); err != nil {
		return false, wrapf(mapError(err), "tenancy enabled")
	}
	return on, nil
}

// CurrentTenant returns the tenant a call with ctx runs under, as the database sees it
// (annals.current_tenant()): "" for none, "*" for all tenants.
func (c *Client) CurrentTenant(ctx context.Context) (string, error) {
	return currentTenant(ctx, c.db(ctx))
}

// CurrentTenantTx is CurrentTenant inside the caller's transaction: the tenant set_tenant (or
// SetTenant) set there, "" for none.
func (c *Client) CurrentTenantTx(ctx context.Context, tx pgx.Tx) (string, error) {
	return currentTenant(ctx, tx)
}

func currentTenant(ctx context.Context, db dbtx) (string, error) {
	var t *string
	if err := db.QueryRow(ctx, "SELECT annals.current_tenant()").Scan(&t); err != nil {
		return "", wrapf(mapError(err), "current tenant")
	}
	if t == nil {
		return "", nil
	}
	return *t, nil
}

// EnableTenantPolicy calls annals.enable_tenant_policy: the projection table tbl opts into
// tenancy, its rows visible and writable only under the tenant in tenantColumn ("" means
// "tenant"). The pool's role must be a member of annals_owner and own the table. It reports
// whether it created the policy now.
func (c *Client) EnableTenantPolicy(ctx context.Context, tbl, tenantColumn string) (bool, error) {
	return enableTenantPolicy(ctx, c.pool, tbl, tenantColumn)
}

// EnableTenantPolicyTx is EnableTenantPolicy inside the caller's transaction.
func (c *Client) EnableTenantPolicyTx(ctx context.Context, tx pgx.Tx, tbl, tenantColumn string) (bool, error) {
	return enableTenantPolicy(ctx, tx, tbl, tenantColumn)
}

func enableTenantPolicy(ctx context.Context, db dbtx, tbl, tenantColumn string) (bool, error) {
	if tenantColumn == "" {
		tenantColumn = "tenant"
	}
	var created bool
	if err := db.QueryRow(ctx, "SELECT annals.enable_tenant_policy($1::regclass, $2)", tbl, tenantColumn).Scan(&created); err != nil {
		return false, wrapf(mapError(err), "enable tenant policy on %s", tbl)
	}
	return created, nil
}
