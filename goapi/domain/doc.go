// Package domain is the domain layer of Annals, built on the annals package's calls. A Registry
// maps stable event type names to Go types; the rules are a Decider (pure decide and evolve functions) or an Aggregate (a struct embedding
// AggregateBase that Raises events); a Repository (AggregateRepository) loads a stream from its
// latest snapshot and the events after it, decides, appends expecting the version it loaded,
// retries on conflicts, snapshots every 100 events after the commit, and loads past states:
//
//	reg := domain.NewRegistry()
//	domain.Register[ItemAdded](reg, "ItemAdded") // explicit, stable names
//	domain.Register[ItemAdjusted](reg, "ItemAdjusted")
//	items := domain.NewRepository(store, reg, itemDecider, domain.RepositoryOptions{})
//	res, err := items.Handle(ctx, "inventory-42", AdjustCount{Delta: -3}) // load, decide, append, retry
//	item, version, err := items.LoadAt(ctx, "inventory-42", annals.AtVersion(2))
package domain
