package inventory

import (
	"github.com/annals-db/annals/goapi/domain"
)

// Stored event type names. They are part of the data: never rename them (register an alias in
// the database instead: annals.register_event_alias).
const (
	TypeItemAdded    = "ItemAdded"
	TypeItemAdjusted = "ItemAdjusted"
)

// ItemAdded creates an item with its name and initial count.
type ItemAdded struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// ItemAdjusted changes an item's count by Delta (positive: in, negative: out).
type ItemAdjusted struct {
	Delta  int    `json:"delta"`
	Reason string `json:"reason"`
}

// RegisterEvents registers the inventory event types in reg.
func RegisterEvents(reg *domain.Registry) {
	domain.Register[ItemAdded](reg, TypeItemAdded)
	domain.Register[ItemAdjusted](reg, TypeItemAdjusted)
}

// NewRegistry returns a registry holding the inventory event types.
func NewRegistry() *domain.Registry {
	reg := domain.NewRegistry()
	RegisterEvents(reg)
	return reg
}

// StreamID returns the stream of the item with this SKU: "inventory-<sku>".
func StreamID(sku string) string { return "inventory-" + sku }
