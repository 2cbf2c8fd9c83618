package replicas_test

import (
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The reads other milestones added (tags, storage, retention, subscription status) go through
// the replica routing like ReadStream: served by the standby, a ReadYourWrites token sees the
// write there, OnPrimary stays on the primary.
func TestLaterReadsAreServedByTheStandby(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay},
		Replica: annals.ReplicaOptions{WaitBound: 10 * time.Second}})
	reads := func() uint64 { return store.ReplicaStats().Replicas[0].Reads }

	res, err := store.Append(e.ctx, "course-7", annals.NoStream,
		annals.EventData{Type: "Enrolled", Data: map[string]any{"student": 42}, Tags: []string{"course:7", "student:42"}})
	require.NoError(t, err)
	ryw := annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID))

	// ReadTagged: right after the append, through the token, the standby has the event.
	tagged, err := store.ReadTagged(ryw, annals.Tags("student:42"), annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, tagged, 1)
	require.Equal(t, res.EventIDs[0], tagged[0].EventID)
	require.ElementsMatch(t, []string{"course:7", "student:42"}, tagged[0].Tags)
	require.EqualValues(t, 1, reads(), "ReadTagged was served by the standby")

	// StorageStats: the standby's hot tier counts the write.
	tiers, err := store.StorageStats(ryw)
	require.NoError(t, err)
	require.NotEmpty(t, tiers)
	require.Equal(t, "hot", tiers[0].Tier)
	require.EqualValues(t, 1, tiers[0].Events)
	require.EqualValues(t, 2, reads(), "StorageStats was served by the standby")

	// Retention rules and status, and subscription status: a rule and a subscription set on the
	// primary, read through the standby after replay.
	_, err = store.SetRetention(e.ctx, annals.RetentionRule{Category: "course", MaxCount: 10})
	require.NoError(t, err)
	_, err = store.CreateSubscription(e.ctx, "mailer", annals.SubscriptionOptions{})
	require.NoError(t, err)
	replayed(t, e)
	rules, err := store.RetentionRules(e.ctx)
	require.NoError(t, err)
	require.Len(t, rules, 1)
	require.Equal(t, "course", rules[0].Category)
	status, err := store.RetentionStatus(e.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, status.Rules)
	subs, err := store.SubscriptionStatus(e.ctx, "mailer")
	require.NoError(t, err)
	require.Len(t, subs, 1)
	require.EqualValues(t, 1, subs[0].EventsBehind)
	require.EqualValues(t, 5, reads(), "the retention and subscription reads were served by the standby")

	// OnPrimary keeps every one of them on the primary; a write the standby has not replayed
	// is visible there at once.
	onPrimary := annals.WithConsistency(e.ctx, annals.OnPrimary)
	_, err = store.Append(e.ctx, "course-7", annals.Exact(1),
		annals.EventData{Type: "Enrolled", Data: map[string]any{"student": 43}, Tags: []string{"course:7", "student:43"}})
	require.NoError(t, err)
	tagged, err = store.ReadTagged(onPrimary, annals.Tags("course:7"), annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, tagged, 2)
	tiers, err = store.StorageStats(onPrimary)
	require.NoError(t, err)
	require.EqualValues(t, 2, tiers[0].Events)
	_, err = store.RetentionRules(onPrimary)
	require.NoError(t, err)
	_, err = store.RetentionStatus(onPrimary)
	require.NoError(t, err)
	_, err = store.SubscriptionStatus(onPrimary, "mailer")
	require.NoError(t, err)
	require.EqualValues(t, 5, reads(), "OnPrimary reads never touch the standby")

	// The standby really is a standby: the writes these reads sit next to are refused there.
	_, err = annals.New(e.replay, annals.ClientOptions{}).SetRetention(e.ctx, annals.RetentionRule{Category: "x", MaxCount: 1})
	require.ErrorIs(t, err, annals.ErrReadOnlyServer)
}
