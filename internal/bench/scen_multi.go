package bench

import (
	"context"
	"fmt"
	"time"
)

// M15: multi-stream and conditional appends, each against what it replaces, in one rotation.

// twoSinglesWorkload appends one event to each of two streams with two append_event calls in one
// statement (one transaction): what a user writes without append_multi.
func twoSinglesWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT annals.append_event('pa-' || :client_id::text || '-' || :s::text, NULL, 'BenchEvent', '` + benchData + `'::jsonb),
		annals.append_event('pb-' || :client_id::text || '-' || :s::text, NULL, 'BenchEvent', '` + benchData + `'::jsonb)`}
}

func multiWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT count(*) FROM annals.append_multi(jsonb_build_array(
		jsonb_build_object('stream_id', 'ma-' || :client_id::text || '-' || :s::text, 'events', '[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb),
		jsonb_build_object('stream_id', 'mb-' || :client_id::text || '-' || :s::text, 'events', '[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb)))`}
}

// untaggedWorkload is a one-event append_events batch without tags; taggedWorkload the same
// event with two tags (one per stream, one random); conditionalWorkload appends that event under
// a condition on its stream's tag and a type no event has: the check runs (an index scan under
// the locks) and passes, as a decision's usually does.
func untaggedWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT annals.append_events('u-' || :client_id::text || '-' || :s::text, NULL,
		'[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb)`}
}

func taggedWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT annals.append_events('t-' || :client_id::text || '-' || :s::text, NULL,
		jsonb_build_array(jsonb_build_object('type', 'BenchEvent', 'data', '` + benchData + `'::jsonb,
			'tags', jsonb_build_array('course:' || :client_id::text || '-' || :s::text, 'student:' || (random() * 1e9)::bigint::text))))`}
}

func conditionalWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT count(*) FROM annals.append_conditional(
		jsonb_build_array(jsonb_build_object('stream_id', 'c-' || :client_id::text || '-' || :s::text, 'events',
			jsonb_build_array(jsonb_build_object('type', 'BenchEvent', 'data', '` + benchData + `'::jsonb,
				'tags', jsonb_build_array('course:' || :client_id::text || '-' || :s::text, 'student:' || (random() * 1e9)::bigint::text))))),
		jsonb_build_object('query', jsonb_build_array(jsonb_build_object('types', '["Other"]'::jsonb,
			'tags', jsonb_build_array('course:' || :client_id::text || '-' || :s::text)))))`}
}

func multiScenario() scenario {
	return scenario{
		name:     "multi",
		summary:  "append_multi to two streams vs two append_event calls in one transaction",
		optIn:    true,
		estimate: func(b *Bench) time.Duration { return b.armsEstimate(b.conc, 2, 2) },
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			label := fmt.Sprintf("append_multi, 2 streams, %d clients", b.conc)
			rs, err := b.compareArms(ctx, label, b.conc, 2,
				arm{name: "2 x append_event", w: twoSinglesWorkload(b.streamsPerClient())},
				arm{name: "append_multi", w: multiWorkload(b.streamsPerClient())})
			if err != nil {
				return nil, err
			}
			method := b.method(b.conc) + fmt.Sprintf("; one event to each of two streams per transaction, %d stream pairs per client; the two arms alternated in one rotation", b.streamsPerClient())
			r := figure(label, "events/s", rs[1].samples, rs[0].samples,
				"two annals.append_event calls in one statement (one transaction), same events", method, nil)
			return []Result{r.withWaits(rs[1].waits, rs[0].waits, "append_multi", "2 x append_event")}, nil
		},
	}
}

func tagsScenario() scenario {
	return scenario{
		name:     "tags",
		summary:  "one-event append_events untagged vs tagged vs append_conditional",
		optIn:    true,
		estimate: func(b *Bench) time.Duration { return b.armsEstimate(b.conc, 1, 3) },
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			label := fmt.Sprintf("tags, %d clients", b.conc)
			rs, err := b.compareArms(ctx, label, b.conc, 1,
				arm{name: "untagged", w: untaggedWorkload(b.streamsPerClient())},
				arm{name: "tagged", w: taggedWorkload(b.streamsPerClient())},
				arm{name: "conditional", w: conditionalWorkload(b.streamsPerClient())})
			if err != nil {
				return nil, err
			}
			method := b.method(b.conc) + fmt.Sprintf("; one event per call on %d streams per client; tagged: 2 tags; conditional: the same event under a one-item condition (a type no event has, the event's first tag), which passes; the three arms alternated in one rotation", b.streamsPerClient())
			base := "annals.append_events with the same one-event batch, untagged"
			tagged := figure(label+", tagged append_events", "events/s", rs[1].samples, rs[0].samples, base, method, nil)
			cond := figure(label+", append_conditional", "events/s", rs[2].samples, rs[0].samples, base, method, nil)
			return []Result{tagged.withWaits(rs[1].waits, rs[0].waits, "tagged", "untagged"),
				cond.withWaits(rs[2].waits, rs[0].waits, "conditional", "untagged")}, nil
		},
	}
}
