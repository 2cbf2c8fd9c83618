package demo

import (
	"context"
	"fmt"
	"reflect"

	annals "github.com/annals-db/annals/goapi"
)

// cold archives the item's stream into compressed cold storage and reads it back: the same
// events, byte for byte.
func (s *story) cold(ctx context.Context) error {
	s.heading("Cold storage")
	s.say("Older events can move into compressed cold storage; every read returns them unchanged.")
	before, err := s.readRaw(ctx)
	if err != nil {
		return err
	}
	if _, err := s.query(ctx, fmt.Sprintf("SELECT annals.archive_stream('inventory-42', %d);", len(before))); err != nil {
		return err
	}
	after, err := s.readRaw(ctx)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(before, after) {
		return fmt.Errorf("read back from cold storage, the stream differs: %d events before, %d after", len(before), len(after))
	}
	s.sql("SELECT * FROM annals.read_stream('inventory-42');")
	s.result("the same %d events, byte for byte, now read from cold storage", len(after))
	if _, err := s.query(ctx, "SELECT tier, events FROM annals.storage_stats();"); err != nil {
		return err
	}
	s.fact("archived to cold storage and read back unchanged")
	return nil
}

func (s *story) readRaw(ctx context.Context) ([]annals.RecordedEvent, error) {
	var out []annals.RecordedEvent
	for ev, err := range s.store.ReadStream(ctx, s.stream, annals.ReadOptions{Raw: true}) {
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
