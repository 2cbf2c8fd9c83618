package inventory

import (
	"errors"
	"fmt"
	"math"

	"github.com/annals-db/annals/goapi/domain"
)

// Item is an inventory item's state, the fold of its events.
type Item struct {
	SKU    string `json:"sku"`
	Name   string `json:"name"`
	Count  int    `json:"count"`
	Exists bool   `json:"exists"`
	// Version is the stream version the item reflects. Service sets it; the Decider leaves it 0
	// and it is not part of snapshots.
	Version int64 `json:"-"`
}

// Command is AddItem or AdjustCount.
type Command interface {
	// ItemSKU is the SKU of the item the command is for.
	ItemSKU() string
}

// MaxCount is the largest count an item may hold. The read models store counts as PostgreSQL
// integer, so a larger count would make the inline projection, and with it the append, fail.
const MaxCount = math.MaxInt32

// AddItem creates an item with a name and a count (0 to MaxCount).
type AddItem struct {
	SKU   string
	Name  string
	Count int
}

// AdjustCount changes an item's count by Delta (not 0, at most MaxCount either way); the count
// may not go below zero or above MaxCount.
type AdjustCount struct {
	SKU    string
	Delta  int
	Reason string
}

// ItemSKU implements Command.
func (c AddItem) ItemSKU() string { return c.SKU }

// ItemSKU implements Command.
func (c AdjustCount) ItemSKU() string { return c.SKU }

var (
	// ErrInsufficientInventory means an adjustment would take the count below zero. The error is an
	// *InsufficientInventoryError with the available and requested counts.
	ErrInsufficientInventory = errors.New("inventory: insufficient inventory")
	// ErrItemExists answers AddItem for an item that was already added.
	ErrItemExists = errors.New("inventory: item already exists")
	// ErrItemNotFound answers a command or a read for an item that was never added.
	ErrItemNotFound = errors.New("inventory: item not found")
	// ErrInvalidCommand refuses a command with an empty SKU or name, an initial count outside 0..MaxCount,
	// a zero or out-of-range delta, or an adjustment that would take the count above MaxCount.
	ErrInvalidCommand = errors.New("inventory: invalid command")
)

// InsufficientInventoryError is returned when an adjustment asks for more than is in stock.
type InsufficientInventoryError struct {
	SKU       string
	Available int
	Requested int
}

func (e *InsufficientInventoryError) Error() string {
	return fmt.Sprintf("inventory: insufficient inventory for %s: %d requested, %d available", e.SKU, e.Requested, e.Available)
}

// Is makes errors.Is(err, ErrInsufficientInventory) hold.
func (e *InsufficientInventoryError) Is(target error) bool { return target == ErrInsufficientInventory }

// Decider returns the inventory rules as a domain.Decider: pure functions, testable without a
// database.
func Decider() domain.Decider[Item, Command] {
	return domain.Decider[Item, Command]{
		Initial: func() Item { return Item{} },
		Decide:  decide,
		Evolve:  evolve,
	}
}

func decide(item Item, command Command) ([]any, error) {
	switch c := command.(type) {
	case AddItem:
		switch {
		case c.SKU == "":
			return nil, fmt.Errorf("%w: empty SKU", ErrInvalidCommand)
		case c.Name == "":
			return nil, fmt.Errorf("%w: empty name", ErrInvalidCommand)
		case c.Count < 0:
			return nil, fmt.Errorf("%w: negative initial count %d", ErrInvalidCommand, c.Count)
		case c.Count > MaxCount:
			return nil, fmt.Errorf("%w: initial count %d is over the maximum %d", ErrInvalidCommand, c.Count, MaxCount)
		case item.Exists:
			return nil, fmt.Errorf("%w: %s", ErrItemExists, c.SKU)
		}
		return []any{ItemAdded{SKU: c.SKU, Name: c.Name, Count: c.Count}}, nil
	case AdjustCount:
		switch {
		case c.Delta == 0:
			return nil, fmt.Errorf("%w: zero delta", ErrInvalidCommand)
		case c.Delta > MaxCount || c.Delta < -MaxCount:
			return nil, fmt.Errorf("%w: delta %d is out of range (at most %d either way)", ErrInvalidCommand, c.Delta, MaxCount)
		case !item.Exists:
			return nil, fmt.Errorf("%w: %s", ErrItemNotFound, c.SKU)
		case item.Count+c.Delta < 0:
			return nil, &InsufficientInventoryError{SKU: item.SKU, Available: item.Count, Requested: -c.Delta}
		case item.Count+c.Delta > MaxCount:
			return nil, fmt.Errorf("%w: count %d%+d would be over the maximum %d", ErrInvalidCommand, item.Count, c.Delta, MaxCount)
		}
		return []any{ItemAdjusted{Delta: c.Delta, Reason: c.Reason}}, nil
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalidCommand, command)
}

func evolve(item Item, event any) Item {
	switch e := event.(type) {
	case ItemAdded:
		item.SKU, item.Name, item.Count, item.Exists = e.SKU, e.Name, e.Count, true
	case ItemAdjusted:
		item.Count += e.Delta
	}
	return item
}
