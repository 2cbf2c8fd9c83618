package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
)

// TestParseCheckpoint: the one parser of TXID:POS reads what formatCheckpoint writes and refuses
// anything else; --to and --after add their words on top.
func TestParseCheckpoint(t *testing.T) {
	t.Parallel()
	cp := annals.Checkpoint{TransactionID: 7412, GlobalPosition: 1830}
	got, ok := parseCheckpoint(formatCheckpoint(cp))
	require.True(t, ok)
	require.Equal(t, cp, got)
	for _, bad := range []string{"", "7412", "7412:", ":1830", "7412:-1", "-1:5", "a:b", "1:2:3"} {
		_, ok := parseCheckpoint(bad)
		require.False(t, ok, bad)
	}

	for _, word := range []string{"beginning", "start", "now"} {
		got, err := parseResetTarget(word)
		require.NoError(t, err)
		require.Equal(t, annals.Checkpoint{}, got)
	}
	_, err := parseResetTarget("later")
	require.ErrorContains(t, err, "want beginning, now or TXID:POS")

	got, err = parseAfter("")
	require.NoError(t, err)
	require.Equal(t, annals.Checkpoint{}, got)
	got, err = parseAfter("7412:1830")
	require.NoError(t, err)
	require.Equal(t, cp, got)
	_, err = parseAfter("now")
	require.ErrorContains(t, err, "want TX:POS")
}
