package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExplainIsOneLine(t *testing.T) {
	msg := explain(errors.New("annals: read: annals: something\nbroke"))
	require.Equal(t, "read: something broke", msg)
	require.False(t, strings.Contains(msg, "\n"))
}

func TestSnapshotSees(t *testing.T) {
	s, err := parseSnapshot("100:110:102,105")
	require.NoError(t, err)
	for txid, want := range map[uint64]bool{99: true, 100: true, 101: true, 102: false, 105: false, 109: true, 110: false, 200: false} {
		require.Equal(t, want, s.sees(txid), "txid %d", txid)
	}
	s, err = parseSnapshot("7:7:")
	require.NoError(t, err)
	require.True(t, s.sees(6))
	require.False(t, s.sees(7))
	_, err = parseSnapshot("nonsense")
	require.Error(t, err)
}
