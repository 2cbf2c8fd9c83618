// Package retry holds the one rule for when an append may be sent again, shared by the annals
// package's Append loop and the domain layer's repositories.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports a serialization failure (40001), deadlock (40P01) or lock not available
// (55P03): the whole transaction can be retried.
func Transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01", "55P03":
		return true
	}
	return false
}

// Resendable reports an append failure worth sending again with the same event ids: a transient
// failure, or a connection failure whose outcome is unknown (the ids make a resend a replay),
// unless the caller gave up.
func Resendable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if Transient(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false // the server answered: a real verdict
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Wait pauses before try attempt+1: attempt × (base + a random part below spread), so writers
// that collided do not come back in lockstep. It returns ctx's error when ctx ends first.
func Wait(ctx context.Context, attempt int, base, spread time.Duration) error {
	wait := time.Duration(attempt) * (base + rand.N(spread))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}
