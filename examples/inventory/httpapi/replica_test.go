package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Over real HTTP, with a real streaming hot standby: every write answers with a Consistency-Token;
// a GET that sends it back reads the item from the standby, never stale; GETs without it are
// served by the standby too; a malformed token is a 400.
func TestReadYourWritesThroughAStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	primary := pgcluster.ForTest(t, pgcluster.Options{})
	pool, err := pgxpool.New(ctx, primary.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = annals.Migrate(ctx, pool)
	require.NoError(t, err)
	require.NoError(t, readmodels.Install(ctx, pool))
	standby := pgcluster.StandbyForTest(t, primary)
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, pgcluster.WaitForReplay(waitCtx, primary.URL("postgres"), standby.URL("postgres")))
	replica, err := pgxpool.New(ctx, standby.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(replica.Close)

	e := serve(t, pool, httpapi.Options{Replicas: []*pgxpool.Pool{replica}})
	const items, rounds = 5, 8
	for i := range items {
		sku := fmt.Sprintf("SKU-%d", i)
		resp := e.do(t, http.MethodPost, "/items", fmt.Sprintf(`{"sku":%q,"name":"Widget","count":10}`, sku))
		require.Equal(t, http.StatusCreated, resp.Status, string(resp.Body))
		token := resp.Header.Get(httpapi.TokenHeader)
		require.NotEmpty(t, token)
		for r := range rounds {
			got := e.do(t, http.MethodGet, "/items/"+sku, "", httpapi.TokenHeader, token)
			require.Equal(t, http.StatusOK, got.Status, string(got.Body))
			var item struct{ Count int }
			require.NoError(t, json.Unmarshal(got.Body, &item))
			require.Equal(t, 10+r, item.Count, "a stale read of %s", sku)
			require.Equal(t, fmt.Sprintf(`"%d"`, r+1), got.Header.Get("ETag"))

			resp = e.do(t, http.MethodPost, "/items/"+sku+"/adjustments", `{"delta":1,"reason":"delivery"}`)
			require.Equal(t, http.StatusOK, resp.Status, string(resp.Body))
			token = resp.Header.Get(httpapi.TokenHeader)
			require.NotEmpty(t, token)
		}
	}
	// The GETs ran on the standby: the replica pool (lazy, no minimum) holds connections there.
	require.Positive(t, replica.Stat().TotalConns())
	var inRecovery bool
	require.NoError(t, replica.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.True(t, inRecovery)
	list := e.do(t, http.MethodGet, "/items", "")
	require.Equal(t, http.StatusOK, list.Status)

	bad := e.do(t, http.MethodGet, "/items/SKU-0", "", httpapi.TokenHeader, "abc")
	require.Equal(t, http.StatusBadRequest, bad.Status)
	require.Contains(t, string(bad.Body), httpapi.TokenHeader)
}
