package inventory

import (
	"context"
	"errors"
	"fmt"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/jackc/pgx/v5"
)

// SnapshotType names the inventory item snapshots.
const SnapshotType = "inventory-item"

// Service runs inventory commands against Annals. Safe for concurrent use.
type Service struct {
	repo *domain.Repository[Item, Command]
}

// NewService returns a Service over client. opts tunes the repository; its zero value gives
// the inventory defaults: snapshot type SnapshotType, a snapshot every 100 events, 3 attempts
// on a version conflict.
func NewService(client *annals.Client, opts domain.RepositoryOptions) *Service {
	if opts.SnapshotType == "" {
		opts.SnapshotType = SnapshotType
	}
	return &Service{repo: domain.NewRepository(client, NewRegistry(), Decider(), opts)}
}

// Repository returns the repository the service uses.
func (s *Service) Repository() *domain.Repository[Item, Command] { return s.repo }

// Handle runs a command and returns the item after it. Business errors are ErrInvalidCommand,
// ErrItemExists, ErrItemNotFound and *InsufficientInventoryError (ErrInsufficientInventory);
// annals.ErrWrongExpectedVersion after the retries are used up.
func (s *Service) Handle(ctx context.Context, command Command) (Item, error) {
	w, err := s.Write(ctx, command)
	return w.Item, err
}

// Written is an item after a command, with the consistency token of the append that produced it
// (its transaction id, for annals.ReadYourWrites; 0 when the command appended nothing).
type Written struct {
	Item  Item
	Token uint64
}

// Write is Handle, also returning the append's consistency token.
func (s *Service) Write(ctx context.Context, command Command) (Written, error) {
	res, err := s.repo.Handle(ctx, StreamID(command.ItemSKU()), command)
	if err != nil {
		return Written{}, err
	}
	res.State.Version = res.Version
	return Written{Item: res.State, Token: res.Appended.TransactionID}, nil
}

// HandleAt runs a command only while the item is at version expected, for a caller that
// decided on what it saw at that version (domain.Repository.HandleAt: no retries). An item that
// was never added is ErrItemNotFound; another version is an *annals.WrongExpectedVersionError
// with the actual version.
func (s *Service) HandleAt(ctx context.Context, command Command, expected int64) (Item, error) {
	w, err := s.WriteAt(ctx, command, expected)
	return w.Item, err
}

// WriteAt is HandleAt, also returning the append's consistency token.
func (s *Service) WriteAt(ctx context.Context, command Command, expected int64) (Written, error) {
	res, err := s.repo.HandleAt(ctx, StreamID(command.ItemSKU()), expected, command)
	if wrong, ok := errors.AsType[*annals.WrongExpectedVersionError](err); ok && wrong.Actual == 0 {
		return Written{}, fmt.Errorf("%w: %s", ErrItemNotFound, command.ItemSKU())
	}
	if err != nil {
		return Written{}, err
	}
	res.State.Version = res.Version
	return Written{Item: res.State, Token: res.Appended.TransactionID}, nil
}

// HandleTx is Handle inside the caller's transaction: the events commit with the caller's
// writes. It does not retry conflicts; retry the transaction.
func (s *Service) HandleTx(ctx context.Context, tx pgx.Tx, command Command) (Item, error) {
	res, err := s.repo.HandleTx(ctx, tx, StreamID(command.ItemSKU()), command)
	if err != nil {
		return Item{}, err
	}
	res.State.Version = res.Version
	return res.State, nil
}

// AddItem adds an item with a name and an initial count.
func (s *Service) AddItem(ctx context.Context, sku, name string, count int) (Item, error) {
	return s.Handle(ctx, AddItem{SKU: sku, Name: name, Count: count})
}

// AdjustCount changes an item's count by delta (deliveries positive, sales negative).
func (s *Service) AdjustCount(ctx context.Context, sku string, delta int, reason string) (Item, error) {
	return s.Handle(ctx, AdjustCount{SKU: sku, Delta: delta, Reason: reason})
}

// Item returns an item's current state, rebuilt from its latest snapshot and the events after
// it; ErrItemNotFound when it was never added.
func (s *Service) Item(ctx context.Context, sku string) (Item, error) {
	item, version, err := s.repo.Load(ctx, StreamID(sku))
	return found(sku, item, version, err)
}

// ItemAt returns an item as it was at a version or a point in time (annals.AtVersion,
// annals.AtTime); ErrItemNotFound when it did not exist yet.
func (s *Service) ItemAt(ctx context.Context, sku string, asOf annals.AsOf) (Item, error) {
	item, version, err := s.repo.LoadAt(ctx, StreamID(sku), asOf)
	return found(sku, item, version, err)
}

func found(sku string, item Item, version int64, err error) (Item, error) {
	if errors.Is(err, annals.ErrStreamNotFound) {
		return Item{}, fmt.Errorf("%w: %s", ErrItemNotFound, sku)
	}
	if err != nil {
		return Item{}, err
	}
	item.Version = version
	return item, nil
}
