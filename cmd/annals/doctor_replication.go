package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxReplayGap is how many received bytes a standby may hold unreplayed before doctor warns.
const maxReplayGap = 16 << 20

// checkReplication reports the server's place in streaming replication. On a hot standby: is it
// receiving and replaying, how far its replay is behind what it received and how old its last
// replayed commit is (reads there lag the primary by that much; writes fail with 25006). On a
// primary: its streaming standbys and their replay lag, when the login may see them.
func (d *doctor) checkReplication(ctx context.Context) {
	var standby bool
	if err := d.pool.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&standby); err != nil {
		d.cannot("replication", err)
		return
	}
	if standby {
		d.checkStandby(ctx)
		return
	}
	ss, err := standbyLags(ctx, d.pool)
	if err != nil {
		d.cannot("replication", err)
		return
	}
	if len(ss) == 0 {
		d.ok("replication", "a primary with no streaming standby: every read is served here")
		return
	}
	var parts []string
	for _, s := range ss {
		p := fmt.Sprintf("%s (%s) %s", s.Name, s.Addr, s.State)
		if s.Behind != nil {
			p += fmt.Sprintf(", replay %s behind", formatBytes(*s.Behind))
		} else {
			p += ", lag not visible to this login (grant it pg_read_all_stats)"
		}
		if s.Lag != nil {
			p += fmt.Sprintf(" (%s)", time.Duration(*s.Lag*float64(time.Second)).Round(time.Microsecond))
		}
		parts = append(parts, p)
	}
	d.ok("replication", "a primary streaming to %d standby(s): %s", len(ss), strings.Join(parts, "; "))
}

// standbyLag is one streaming standby as its primary sees it (pg_stat_replication). Behind and
// Lag are nil when the login may not see them (pg_read_all_stats).
type standbyLag struct {
	Name, Addr, State string
	Behind            *int64
	Lag               *float64
}

// standbyLags lists the primary's streaming standbys: how many bytes of WAL their replay is behind
// the primary's and the last measured replay lag.
func standbyLags(ctx context.Context, pool *pgxpool.Pool) ([]standbyLag, error) {
	rows, err := pool.Query(ctx, `
		SELECT coalesce(r.application_name, ''), coalesce(pg_catalog.host(r.client_addr), 'local'), r.state,
		       (pg_catalog.pg_current_wal_lsn() - r.replay_lsn)::bigint,
		       extract(epoch FROM r.replay_lag)::float8
		  FROM pg_catalog.pg_stat_replication AS r
		 WHERE NOT pg_catalog.pg_is_in_recovery()
		 ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[standbyLag])
}

func (d *doctor) checkStandby(ctx context.Context) {
	var (
		receiver    *string
		sender      *string
		paused      bool
		gap         *int64
		replayedAgo *float64
	)
	err := d.pool.QueryRow(ctx, `
		SELECT (SELECT w.status FROM pg_catalog.pg_stat_wal_receiver AS w),
		       (SELECT w.sender_host || ':' || w.sender_port FROM pg_catalog.pg_stat_wal_receiver AS w),
		       pg_catalog.pg_is_wal_replay_paused(),
		       (pg_catalog.pg_last_wal_receive_lsn() - pg_catalog.pg_last_wal_replay_lsn())::bigint,
		       extract(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp())::float8`).
		Scan(&receiver, &sender, &paused, &gap, &replayedAgo)
	if err != nil {
		d.cannot("replication", err)
		return
	}
	last := "no commit replayed yet"
	if replayedAgo != nil {
		last = fmt.Sprintf("last replayed commit made %s ago", time.Duration(*replayedAgo*float64(time.Second)).Round(time.Millisecond))
	}
	behind := "nothing received yet"
	if gap != nil {
		behind = fmt.Sprintf("replay %s behind what it received", formatBytes(max(*gap, 0)))
	}
	from := "no WAL receiver"
	if receiver != nil {
		from = "WAL receiver " + *receiver
		if sender != nil {
			from += " from " + *sender
		}
	}
	switch {
	case paused:
		d.warn("replication", "a hot standby whose replay is paused (%s; %s): reads here fall further behind; run SELECT pg_wal_replay_resume()", behind, last)
	case receiver == nil || *receiver != "streaming":
		d.warn("replication", "a hot standby not streaming from its primary (%s; %s; %s): check primary_conninfo and the primary's log", from, behind, last)
	case gap != nil && *gap > maxReplayGap:
		d.warn("replication", "a hot standby falling behind: %s (%s; %s): reads here are stale by that much", behind, from, last)
	default:
		d.ok("replication", "a hot standby, %s, %s (%s): serves reads; writes go to the primary", from, behind, last)
	}
}
