package shard_test

import (
	"testing"

	"github.com/annals-db/annals/goapi/shard"
	"github.com/stretchr/testify/require"
)

func TestConninfoDropsCredentialsAndBoundsTheConnect(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://app:secret@db1:6432/events?sslmode=require": "host=db1 port=6432 dbname=events sslmode=require connect_timeout=10",
		"postgres://db2/events?connect_timeout=3":               "host=db2 dbname=events connect_timeout=3",
		"host=db3 user=app password=x dbname='my events'":       "host=db3 dbname='my events' connect_timeout=10",
	} {
		got, err := shard.Conninfo(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := shard.Conninfo("nonsense")
	require.Error(t, err)
	// A URL that does not parse is refused without echoing it: it may hold a password.
	_, err = shard.Conninfo("postgres://app:s3cret@db1:bad-port/events")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}
