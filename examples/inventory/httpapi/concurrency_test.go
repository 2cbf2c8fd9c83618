package httpapi_test

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	"github.com/stretchr/testify/require"
)

func TestIfMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})

	t.Run("a stale version is 412 and changes nothing; the current one succeeds", func(t *testing.T) {
		t.Parallel()
		e.create(t, "im", "Matched", 10)
		require.Equal(t, http.StatusOK, e.adjust(t, "im", -1, "").Status) // version 2: "1" is stale
		streams, events := e.stored(t)

		resp := e.adjust(t, "im", -4, `"1"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodePreconditionFailed, got.Code)
		require.Equal(t, map[string]any{"expected": 1.0, "actual": 2.0}, got.Details)
		require.Empty(t, resp.Header.Get("ETag"))
		require.Equal(t, int64(2), e.version(t, "im"))
		s, n := e.stored(t)
		require.Equal(t, []int64{streams, events}, []int64{s, n}, "nothing appended")
		count, version := e.projected(t, "im")
		require.Equal(t, 9, count)
		require.Equal(t, int64(2), version)

		resp = e.adjust(t, "im", -4, `"2"`)
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, `"3"`, resp.Header.Get("ETag"))
		require.Equal(t, httpapi.Item{SKU: "im", Name: "Matched", Count: 5, Version: 3}, resp.item(t))
		count, version = e.projected(t, "im")
		require.Equal(t, 5, count)
		require.Equal(t, int64(3), version)

		resp = e.adjust(t, "im", 1, `"7"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, "a version from the future never matches")
		require.Equal(t, map[string]any{"expected": 7.0, "actual": 3.0}, resp.err(t).Details)

		resp = e.adjust(t, "im", -6, `"3"`)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, "the precondition holds; the rules refuse")
		require.Equal(t, httpapi.CodeInsufficientInventory, resp.err(t).Code)

		resp = e.adjust(t, "im", -5, `*`)
		require.Equal(t, http.StatusOK, resp.Status, "* is any version")
		require.Equal(t, `"4"`, resp.Header.Get("ETag"))
		require.Equal(t, int64(4), e.version(t, "im"))
	})

	t.Run("two clients with the same If-Match: exactly one wins", func(t *testing.T) {
		t.Parallel()
		e.create(t, "race", "Contested", 100)
		for round := range 10 {
			version := int64(round + 1)
			start := make(chan struct{})
			answers := make([]response, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Go(func() {
					<-start
					answers[i], errs[i] = e.tryAdjust(t, "race", -1, `"`+jsonInt(int(version))+`"`)
				})
			}
			close(start)
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
			statuses := []int{answers[0].Status, answers[1].Status}
			slices.Sort(statuses)
			require.Equal(t, []int{http.StatusOK, http.StatusPreconditionFailed}, statuses, "round %d", round)
			require.Equal(t, version+1, e.version(t, "race"))
		}
		count, version := e.projected(t, "race")
		require.Equal(t, 90, count)
		require.Equal(t, int64(11), version)
	})
}

// A writer that commits between the request's read and its append: the append itself checks.
func TestConcurrentWriterBetweenReadAndAppend(t *testing.T) {
	t.Parallel()

	// race runs an adjustment of -1 on an item at version 1 while another transaction holds the
	// item's append lock with an adjustment of +1, commits it once the request waits for the lock,
	// and returns the answer.
	race := func(t *testing.T, opts httpapi.Options, ifMatch string) (*env, response) {
		e := newEnv(t, opts)
		e.create(t, "c", "Contended", 5)
		commit := e.holdStream(t, "c", 1)
		type result struct {
			resp response
			err  error
		}
		answer := make(chan result, 1)
		go func() {
			resp, err := e.tryAdjust(t, "c", -1, ifMatch)
			answer <- result{resp, err}
		}()
		waitForLockWaiter(t, e.pool)
		commit()
		got := <-answer
		require.NoError(t, got.err)
		return e, got.resp
	}

	t.Run("with If-Match: 412", func(t *testing.T) {
		t.Parallel()
		e, resp := race(t, httpapi.Options{}, `"1"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		require.Equal(t, map[string]any{"expected": 1.0, "actual": 2.0}, resp.err(t).Details)
		require.Equal(t, int64(2), e.version(t, "c"), "only the other writer's event")
	})

	t.Run("without If-Match: reload and decide again", func(t *testing.T) {
		t.Parallel()
		e, resp := race(t, httpapi.Options{}, "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, httpapi.Item{SKU: "c", Name: "Contended", Count: 5, Version: 3}, resp.item(t))
		count, _ := e.projected(t, "c")
		require.Equal(t, 5, count)
	})

	t.Run("without If-Match, when the conflicts outlast the attempts: 409", func(t *testing.T) {
		t.Parallel()
		e, resp := race(t, httpapi.Options{MaxAttempts: 1}, "")
		require.Equal(t, http.StatusConflict, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodeConflict, got.Code)
		require.Equal(t, 2.0, got.Details["actual"])
		require.Equal(t, int64(2), e.version(t, "c"))
	})
}

func TestConcurrentSalesWithoutIfMatch(t *testing.T) {
	t.Parallel()
	// A sale loses a race only to another sale that succeeded, and at most 10 can: the 11th
	// attempt always decides on a settled count. So no request ends in 409.
	e := newEnv(t, httpapi.Options{MaxAttempts: 11})
	e.create(t, "hot", "Hot item", 10)

	const buyers = 25
	start := make(chan struct{})
	answers := make([]response, buyers)
	errs := make([]error, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = e.tryAdjust(t, "hot", -1, "")
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	var sold, refused int
	versions := map[string]bool{}
	for _, resp := range answers {
		switch resp.Status {
		case http.StatusOK:
			sold++
			versions[resp.Header.Get("ETag")] = true
		case http.StatusUnprocessableEntity:
			refused++
			got := resp.err(t)
			require.Equal(t, httpapi.CodeInsufficientInventory, got.Code)
			require.Equal(t, map[string]any{"available": 0.0, "requested": 1.0}, got.Details)
		default:
			require.Failf(t, "unexpected answer", "%d %s", resp.Status, resp)
		}
	}
	require.Equal(t, 10, sold)
	require.Equal(t, 15, refused)
	require.Len(t, versions, 10, "every sale got its own version")

	resp := e.do(t, "GET", "/items/hot", "")
	require.Equal(t, http.StatusOK, resp.Status)
	require.Equal(t, 0, resp.item(t).Count)
	require.Equal(t, int64(11), resp.item(t).Version)
	require.Equal(t, int64(11), e.version(t, "hot"))
}
