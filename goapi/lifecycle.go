package annals

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lifecycle: purged streams, retention rules and crypto-shredding of personal data. Every call
// here needs annals_owner: removal and erasure are the one controlled exception to append-only.

// PurgeStream removes a stream's events and snapshots for good and leaves a tombstone: StreamInfo
// reports State "purged" and the last version, every later append fails with ErrStreamDeleted,
// and versions are never reused. The purge is logged with reason ("" records none). It returns
// how many events were removed. Errors: ErrWrongExpectedVersion when the stream has no events or
// is not at expected, ErrStreamDeleted when it is already purged.
func (c *Client) PurgeStream(ctx context.Context, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	return purgeStream(ctx, c.db(ctx), streamID, expected, reason)
}

// PurgeStreamTx is PurgeStream inside the caller's transaction.
func (c *Client) PurgeStreamTx(ctx context.Context, tx pgx.Tx, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	return purgeStream(ctx, tx, streamID, expected, reason)
}

func purgeStream(ctx context.Context, db dbtx, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	var n int64
	var r *string
	if reason != "" {
		r = &reason
	}
	if err := db.QueryRow(ctx, "SELECT annals.purge_stream($1, $2, $3)", streamID, expected.arg(), r).Scan(&n); err != nil {
		return 0, wrapf(mapError(err), "purge stream %q", streamID)
	}
	return n, nil
}

// RetentionRule is the retention rule of one stream (StreamID) or of every stream of a category
// (Category); exactly one of the two is set. Zero limits are unset; a rule needs at least one.
type RetentionRule struct {
	StreamID string
	Category string
	// MaxAge removes events recorded longer ago than this.
	MaxAge time.Duration
	// MaxCount keeps the newest MaxCount events of each stream.
	MaxCount int64
	// TruncateBefore removes the events below this stream version, even above a snapshot.
	TruncateBefore int64
	// CreatedAt and UpdatedAt are set by RetentionRules.
	CreatedAt, UpdatedAt time.Time
}

// Target names what the rule is for: "stream S" or "category C".
func (r RetentionRule) Target() string {
	if r.StreamID != "" {
		return "stream " + r.StreamID
	}
	return "category " + r.Category
}

// SetRetention sets or replaces a retention rule; a rule with all three limits zero removes the
// stream's or category's rule. ApplyRetention does the removing. It returns true when a rule was
// set or removed. Errors: ErrInvalidArgument.
func (c *Client) SetRetention(ctx context.Context, rule RetentionRule) (bool, error) {
	return setRetention(ctx, c.db(ctx), rule)
}

// SetRetentionTx is SetRetention inside the caller's transaction.
func (c *Client) SetRetentionTx(ctx context.Context, tx pgx.Tx, rule RetentionRule) (bool, error) {
	return setRetention(ctx, tx, rule)
}

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func setRetention(ctx context.Context, db dbtx, rule RetentionRule) (bool, error) {
	var ok bool
	var ageMicros *int64
	if rule.MaxAge != 0 {
		us := rule.MaxAge.Microseconds()
		ageMicros = &us
	}
	err := db.QueryRow(ctx, `SELECT annals.set_retention(stream_id => $1, category => $2,
	        max_age => $3::bigint * interval '1 microsecond', max_count => $4, truncate_before => $5)`,
		nonZero(rule.StreamID), nonZero(rule.Category), ageMicros, nonZero(rule.MaxCount), nonZero(rule.TruncateBefore)).Scan(&ok)
	if err != nil {
		return false, wrapf(mapError(err), "set retention of %s", rule.Target())
	}
	return ok, nil
}

// RetentionRules lists the retention rules (the annals.retention_rules view), category rules
// first. With replicas it reads where ctx's Consistency says (WithConsistency).
func (c *Client) RetentionRules(ctx context.Context) ([]RetentionRule, error) {
	return routed(ctx, c, func(db dbtx) ([]RetentionRule, error) { return retentionRules(ctx, db) })
}

// RetentionRulesTx is RetentionRules inside the caller's transaction.
func (c *Client) RetentionRulesTx(ctx context.Context, tx pgx.Tx) ([]RetentionRule, error) {
	return retentionRules(ctx, tx)
}

func retentionRules(ctx context.Context, db dbtx) ([]RetentionRule, error) {
	rows, err := db.Query(ctx, `SELECT coalesce(r.stream_id, ''), coalesce(r.category, ''),
	        coalesce((extract(epoch FROM r.max_age) * 1000000)::bigint, 0), coalesce(r.max_count, 0),
	        coalesce(r.truncate_before, 0), r.created_at, r.updated_at
	   FROM annals.retention_rules AS r`)
	if err != nil {
		return nil, wrapf(mapError(err), "retention rules")
	}
	rules, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RetentionRule, error) {
		var r RetentionRule
		var us int64
		err := row.Scan(&r.StreamID, &r.Category, &us, &r.MaxCount, &r.TruncateBefore, &r.CreatedAt, &r.UpdatedAt)
		r.MaxAge = time.Duration(us) * time.Microsecond
		return r, err
	})
	if err != nil {
		return nil, wrapf(mapError(err), "retention rules")
	}
	return rules, nil
}

// ApplyRetention removes the events past their retention rule, at most maxEvents in this call (0
// means the server's default, 100000), in one transaction, and returns how many it removed. Call
// it again while it returns maxEvents. Never a stream's last event, never (for MaxAge and
// MaxCount) an event above the stream's newest snapshot.
func (c *Client) ApplyRetention(ctx context.Context, maxEvents int64) (int64, error) {
	return applyRetention(ctx, c.db(ctx), maxEvents)
}

// ApplyRetentionTx is ApplyRetention inside the caller's transaction.
func (c *Client) ApplyRetentionTx(ctx context.Context, tx pgx.Tx, maxEvents int64) (int64, error) {
	return applyRetention(ctx, tx, maxEvents)
}

func applyRetention(ctx context.Context, db dbtx, maxEvents int64) (int64, error) {
	var n int64
	var err error
	if maxEvents == 0 {
		err = db.QueryRow(ctx, "SELECT annals.apply_retention()").Scan(&n)
	} else {
		err = db.QueryRow(ctx, "SELECT annals.apply_retention($1)", maxEvents).Scan(&n)
	}
	if err != nil {
		return 0, wrapf(mapError(err), "apply retention")
	}
	return n, nil
}

// RetentionStatus is what annals.retention_status reports: how many rules exist and the last
// ApplyRetention run (zero LastRunAt: never).
type RetentionStatus struct {
	Rules       int64
	LastRunAt   time.Time
	LastRemoved int64
	// LastDone is false when the last run stopped at its budget with more events due.
	LastDone bool
}

// RetentionStatus returns the number of retention rules and when retention last ran. With
// replicas it reads where ctx's Consistency says (WithConsistency).
func (c *Client) RetentionStatus(ctx context.Context) (RetentionStatus, error) {
	return routed(ctx, c, func(db dbtx) (RetentionStatus, error) { return retentionStatus(ctx, db) })
}

// RetentionStatusTx is RetentionStatus inside the caller's transaction.
func (c *Client) RetentionStatusTx(ctx context.Context, tx pgx.Tx) (RetentionStatus, error) {
	return retentionStatus(ctx, tx)
}

func retentionStatus(ctx context.Context, db dbtx) (RetentionStatus, error) {
	var s RetentionStatus
	var at *time.Time
	var removed *int64
	var done *bool
	err := db.QueryRow(ctx, "SELECT rules, last_run_at, last_removed, last_done FROM annals.retention_status()").
		Scan(&s.Rules, &at, &removed, &done)
	if err != nil {
		return RetentionStatus{}, wrapf(mapError(err), "retention status")
	}
	if at != nil {
		s.LastRunAt, s.LastRemoved, s.LastDone = *at, *removed, *done
	}
	return s, nil
}

// RegisterPersonalData marks JSON paths of an event type's data ("$.email", "$.address.street")
// as personal data of the subject whose id is the string at subjectPath: appends store them
// encrypted with the subject's key, reads decrypt them, ForgetSubject erases them. Registering
// again adds paths. It returns true when the type was not registered before. Errors:
// ErrInvalidArgument, ErrReserved.
func (c *Client) RegisterPersonalData(ctx context.Context, eventType string, paths []string, subjectPath string) (bool, error) {
	return registerPersonalData(ctx, c.db(ctx), eventType, paths, subjectPath)
}

// RegisterPersonalDataTx is RegisterPersonalData inside the caller's transaction.
func (c *Client) RegisterPersonalDataTx(ctx context.Context, tx pgx.Tx, eventType string, paths []string, subjectPath string) (bool, error) {
	return registerPersonalData(ctx, tx, eventType, paths, subjectPath)
}

func registerPersonalData(ctx context.Context, db dbtx, eventType string, paths []string, subjectPath string) (bool, error) {
	var isNew bool
	if err := db.QueryRow(ctx, "SELECT annals.register_personal_data($1, $2, $3)", eventType, paths, subjectPath).Scan(&isNew); err != nil {
		return false, wrapf(mapError(err), "register personal data of %q", eventType)
	}
	return isNew, nil
}

// ForgetSubject erases a subject's personal data for good: its key is destroyed, so reads return
// the registered fields as JSON null and list them in the metadata's "$erased"; the registered
// erasure handlers are called with the subject id. It returns how many keys were destroyed (0
// when nothing of the subject was stored). Errors: ErrInvalidArgument for an empty id.
func (c *Client) ForgetSubject(ctx context.Context, subjectID string) (int64, error) {
	return forgetSubject(ctx, c.db(ctx), subjectID)
}

// ForgetSubjectTx is ForgetSubject inside the caller's transaction.
func (c *Client) ForgetSubjectTx(ctx context.Context, tx pgx.Tx, subjectID string) (int64, error) {
	return forgetSubject(ctx, tx, subjectID)
}

func forgetSubject(ctx context.Context, db dbtx, subjectID string) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, "SELECT annals.forget_subject($1)", subjectID).Scan(&n); err != nil {
		return 0, wrapf(mapError(err), "forget subject")
	}
	return n, nil
}

// RegisterErasureHandler registers a function (subject_id text) RETURNS void, by its SQL name
// ("myapp.erase_customer(text)"), that ForgetSubject calls so a projection that copied personal
// data can erase it. It returns true when new. Errors: ErrInvalidArgument.
func (c *Client) RegisterErasureHandler(ctx context.Context, handler string) (bool, error) {
	return registerErasureHandler(ctx, c.db(ctx), handler)
}

// RegisterErasureHandlerTx is RegisterErasureHandler inside the caller's transaction.
func (c *Client) RegisterErasureHandlerTx(ctx context.Context, tx pgx.Tx, handler string) (bool, error) {
	return registerErasureHandler(ctx, tx, handler)
}

func registerErasureHandler(ctx context.Context, db dbtx, handler string) (bool, error) {
	var isNew bool
	if err := db.QueryRow(ctx, "SELECT annals.register_erasure_handler($1::regprocedure)", handler).Scan(&isNew); err != nil {
		return false, wrapf(mapError(err), "register erasure handler %s", handler)
	}
	return isNew, nil
}
