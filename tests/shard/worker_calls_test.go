package shard_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The worker's per-shard calls through the proxy: annals.run_async_projections(shard, n) and
// annals.refresh_views(shard) run the shard's own call (its errors unchanged), an unknown shard is
// ST422, and a shard that is down is ST502 naming it.
func TestWorkerCallsRunOnTheirShard(t *testing.T) {
	t.Parallel()
	s := newStore(t, 3)
	ctx := s.ctx

	got, want := pgErr(t, s.proxy, `SELECT annals.run_async_projections(2, 0)`), pgErr(t, s.shards[1], `SELECT annals.run_async_projections(0)`)
	require.Equal(t, "ST422", want.Code)
	require.Equal(t, []string{want.Code, want.Message, want.Detail, want.Hint}, []string{got.Code, got.Message, got.Detail, got.Hint})
	for _, q := range []string{`SELECT annals.run_async_projections(4)`, `SELECT * FROM annals.refresh_views(4)`} {
		unknown := pgErr(t, s.proxy, q)
		require.Equal(t, "ST422", unknown.Code, q)
		require.JSONEq(t, `{"argument": "shard", "reason": "no shard 4"}`, unknown.Detail, q)
	}

	// An async projection on shard 3 applies shard 3's events when the proxy runs that shard's call.
	_, err := s.shards[2].Exec(ctx, `CREATE TABLE public.seen (stream_id text NOT NULL);
		GRANT SELECT, INSERT, UPDATE, DELETE ON public.seen TO annals_owner;
		CREATE FUNCTION public.record_seen(events annals.event[]) RETURNS void LANGUAGE sql
		  BEGIN ATOMIC INSERT INTO public.seen SELECT e.stream_id FROM unnest(events) AS e; END;
		GRANT EXECUTE ON FUNCTION public.record_seen(annals.event[]) TO annals_owner;
		SELECT annals.register_projection('seen', 'public.record_seen(annals.event[])', ARRAY['public.seen']::regclass[], mode => 'async')`)
	require.NoError(t, err)
	var id string
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("acct-%d", i); s.shardOf(t, c) == 3 {
			id = c
		}
	}
	_, err = s.proxy.Exec(ctx, `SELECT * FROM annals.append_events($1, 0, '[{"type": "Opened", "data": {}}, {"type": "Opened", "data": {}}]')`, id)
	require.NoError(t, err)
	// The feed's barrier is cluster-wide: another test's open transaction can hold the events back
	// for a while, so apply until both are in (and never more).
	var n, applied int64
	deadline := time.Now().Add(30 * time.Second)
	for applied < 2 {
		require.True(t, time.Now().Before(deadline), "the shard's projection applied %d of 2 events", applied)
		require.NoError(t, s.proxy.QueryRow(ctx, `SELECT annals.run_async_projections(3, 1000)`).Scan(&n))
		applied += n
		if applied < 2 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.EqualValues(t, 2, applied)
	require.NoError(t, s.proxy.QueryRow(ctx, `SELECT annals.run_async_projections(3)`).Scan(&n))
	require.EqualValues(t, 0, n)
	require.NoError(t, s.shards[2].QueryRow(ctx, `SELECT count(*) FROM public.seen`).Scan(&n))
	require.EqualValues(t, 2, n)
	require.NoError(t, s.proxy.QueryRow(ctx, `SELECT count(*) FROM annals.refresh_views(3, true)`).Scan(&n))
	require.EqualValues(t, 0, n)

	setConninfo(t, s, 2, fmt.Sprintf("host=127.0.0.1 port=%d dbname=gone connect_timeout=5", closedPort(t)))
	for _, q := range []string{`SELECT annals.run_async_projections(2)`, `SELECT * FROM annals.refresh_views(2)`} {
		down := pgErr(t, s.proxy, q)
		require.Equal(t, "ST502", down.Code, q)
		require.Contains(t, down.Message, fmt.Sprintf("shard 2 (%s) is unavailable", s.names[1]), q)
	}
	require.NoError(t, s.proxy.QueryRow(ctx, `SELECT annals.run_async_projections(1)`).Scan(&n))
}
