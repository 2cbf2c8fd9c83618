package tests

import (
	"context"
	"errors"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
)

func TestAppendAndReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := annals.New(annalstest.NewDB(t), annals.ClientOptions{})

	res, err := store.Append(ctx, "inventory-1", annals.NoStream,
		annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": "A-1", "count": 5}},
		annals.EventData{Type: "ItemAdjusted", Data: map[string]any{"delta": -2}})
	if err != nil {
		t.Fatal(err)
	}
	if res.StreamVersion != 2 || len(res.EventIDs) != 2 {
		t.Fatalf("got %+v", res)
	}
	var types []string
	for ev, err := range store.ReadStream(ctx, "inventory-1", annals.ReadOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.EventType)
	}
	if len(types) != 2 || types[0] != "ItemAdded" || types[1] != "ItemAdjusted" {
		t.Fatalf("read back %v", types)
	}
	_, err = store.Append(ctx, "inventory-1", annals.Exact(1), annals.EventData{Type: "X"})
	var wev *annals.WrongExpectedVersionError
	if !errors.As(err, &wev) || !errors.Is(err, annals.ErrWrongExpectedVersion) || wev.Actual != 2 {
		t.Fatalf("want wrong expected version with actual 2, got %v", err)
	}
}
