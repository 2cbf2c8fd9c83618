package inventory_test

import (
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/stretchr/testify/require"
)

// The rules, without a database.
func TestDecider(t *testing.T) {
	t.Parallel()
	scenario := func(t *testing.T) *annalstest.DeciderScenario[inventory.Item, inventory.Command] {
		return annalstest.Decider(t, inventory.Decider()).WithRegistry(inventory.NewRegistry())
	}
	widget := inventory.ItemAdded{SKU: "42", Name: "Blue widget", Count: 10}

	t.Run("add an item", func(t *testing.T) {
		t.Parallel()
		item := scenario(t).When(inventory.AddItem{SKU: "42", Name: "Blue widget", Count: 10}).Then(widget)
		require.Equal(t, inventory.Item{SKU: "42", Name: "Blue widget", Count: 10, Exists: true}, item)
		scenario(t).When(inventory.AddItem{SKU: "0", Name: "Empty shelf"}).
			Then(inventory.ItemAdded{SKU: "0", Name: "Empty shelf"})
	})

	t.Run("adjust up and down", func(t *testing.T) {
		t.Parallel()
		item := scenario(t).Given(widget).When(inventory.AdjustCount{SKU: "42", Delta: 5, Reason: "delivery"}).
			Then(inventory.ItemAdjusted{Delta: 5, Reason: "delivery"})
		require.Equal(t, 15, item.Count)
		item = scenario(t).Given(widget, inventory.ItemAdjusted{Delta: -3}).When(inventory.AdjustCount{SKU: "42", Delta: -7, Reason: "sale"}).
			Then(inventory.ItemAdjusted{Delta: -7, Reason: "sale"})
		require.Equal(t, 0, item.Count, "down to exactly zero is fine")
	})

	t.Run("never below zero", func(t *testing.T) {
		t.Parallel()
		err := scenario(t).Given(widget, inventory.ItemAdjusted{Delta: -4}).
			When(inventory.AdjustCount{SKU: "42", Delta: -7, Reason: "sale"}).
			ThenError(inventory.ErrInsufficientInventory)
		var insufficient *inventory.InsufficientInventoryError
		require.ErrorAs(t, err, &insufficient)
		require.Equal(t, inventory.InsufficientInventoryError{SKU: "42", Available: 6, Requested: 7}, *insufficient)
		require.EqualError(t, err, "inventory: insufficient inventory for 42: 7 requested, 6 available")
	})

	t.Run("existence and validation", func(t *testing.T) {
		t.Parallel()
		scenario(t).Given(widget).When(inventory.AddItem{SKU: "42", Name: "Again", Count: 1}).ThenError(inventory.ErrItemExists)
		scenario(t).When(inventory.AdjustCount{SKU: "42", Delta: 1}).ThenError(inventory.ErrItemNotFound)
		scenario(t).Given(widget).When(inventory.AdjustCount{SKU: "42"}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).When(inventory.AddItem{SKU: "", Name: "x"}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).When(inventory.AddItem{SKU: "1", Name: ""}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).When(inventory.AddItem{SKU: "1", Name: "x", Count: -1}).ThenError(inventory.ErrInvalidCommand)
	})

	// The read models store counts as integer: a count they cannot hold is refused here, not by a
	// failing projection inside the append.
	t.Run("never above MaxCount", func(t *testing.T) {
		t.Parallel()
		full := inventory.ItemAdded{SKU: "42", Name: "Blue widget", Count: inventory.MaxCount}
		scenario(t).When(inventory.AddItem{SKU: "42", Name: "Blue widget", Count: inventory.MaxCount}).Then(full)
		scenario(t).When(inventory.AddItem{SKU: "42", Name: "x", Count: inventory.MaxCount + 1}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).Given(full).When(inventory.AdjustCount{SKU: "42", Delta: 1}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).Given(widget).When(inventory.AdjustCount{SKU: "42", Delta: inventory.MaxCount - 10}).
			Then(inventory.ItemAdjusted{Delta: inventory.MaxCount - 10})
		scenario(t).Given(widget).When(inventory.AdjustCount{SKU: "42", Delta: inventory.MaxCount + 1}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).Given(widget).When(inventory.AdjustCount{SKU: "42", Delta: -inventory.MaxCount - 1}).ThenError(inventory.ErrInvalidCommand)
		scenario(t).Given(full).When(inventory.AdjustCount{SKU: "42", Delta: -inventory.MaxCount}).
			Then(inventory.ItemAdjusted{Delta: -inventory.MaxCount})
	})
}
