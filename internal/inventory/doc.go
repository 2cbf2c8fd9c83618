// Package inventory is the inventory domain of the original guide, built on the annals domain
// layer: an item is a stream "inventory-<sku>"; AddItem creates it with a count, AdjustCount
// moves the count up (deliveries) and down (sales), never below zero.
//
// The rules live in a pure Decider (Decider, no database needed to test it: see
// annalstest.Decider); Service runs commands through a domain.Repository, which loads the item
// from its latest snapshot and the events after it, appends the decided events expecting the
// version it loaded, retries when another writer got there first, and snapshots every 100
// events. The event type names and shapes, ItemAdded {sku, name, count} and ItemAdjusted
// {delta, reason}, are the ones the SQL read models in the readmodels package project.
//
// It lives under internal/ because `annals demo` and the benchmark run it too; the example
// service (examples/inventory) serves it over HTTP.
package inventory
