// Package proxygen writes functions/proxy/020_routed_calls.sql: the PL/Proxy functions of a
// sharded store's proxy and their public wrappers, for every single-node function in Calls, with
// the signature (argument names, types, defaults, result) and grants read from pg_catalog of a
// fresh single-node install. A signature therefore has one source, the single-node function;
// TestRoutedCallsGenerated (functions/proxy) fails when the committed file is not what the
// single-node functions give, and rewrites it with -update (go generate ./functions/proxy).
package proxygen

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Route is how the proxy finds the shard a call runs on.
type Route int

const (
	// Stream routes on the hash of the stream_id argument: annals_proxy.<name> (TARGET the
	// shard's annals.<name>) and the public annals.<name> with the single-node signature.
	Stream Route = iota
	// Shard takes the shard as a leading argument: annals_proxy.<name>_on(shard, ...) and the
	// public annals.<name>(shard, ...), the single-node signature after the shard.
	Shard
	// EachShard is called once per shard by a hand-written public annals.<name> that asks every
	// shard (030_shard_calls.sql): only annals_proxy.<name>_on(shard, ...) is generated.
	EachShard
)

// Call is one single-node function the proxy routes.
type Call struct {
	// Name is the function's name in schema annals on a shard (it has one signature there).
	Name  string
	Route Route
	// Comment is the public wrapper's COMMENT (Stream and Shard).
	Comment string
}

// Calls is the one list of the routed functions.
var Calls = []Call{
	{"append_events", Stream, "Appends events to a stream on the shard that owns it; as the single-node annals.append_events."},
	{"append_event", Stream, "Appends one event to a stream on the shard that owns it; as the single-node annals.append_event."},
	{"read_stream", Stream, "Reads a stream from the shard that owns it; as the single-node annals.read_stream."},
	{"read_stream_as_of", Stream, "Reads a stream as it was, from the shard that owns it; as the single-node annals.read_stream_as_of."},
	{"stream_info", Stream, "A stream's version, times and state, from the shard that owns it; as the single-node annals.stream_info."},
	{"stream_version_at", Stream, "A stream's version at a time, from the shard that owns it; as the single-node annals.stream_version_at."},
	{"stream_stats", Stream, "A stream's event count and stored size, from the shard that owns it; as the single-node annals.stream_stats."},
	{"delete_stream", Stream, "Deletes a stream on the shard that owns it; as the single-node annals.delete_stream."},
	{"save_snapshot", Stream, "Saves a snapshot on the shard that owns the stream; as the single-node annals.save_snapshot."},
	{"load_snapshot", Stream, "Loads a snapshot from the shard that owns the stream; as the single-node annals.load_snapshot."},
	{"read_all", Shard, "One shard's gap-free feed after (after_transaction, after_position): the single-node annals.read_all, " +
		"run on shard (1..N, see annals.shards()). A sharded store's checkpoint is one such position per shard."},
	{"read_category", Shard, "One shard's gap-free feed of one category: the single-node annals.read_category, run on shard (1..N)."},
	{"run_async_projections", Shard, "The single-node annals.run_async_projections run on shard (1..N, see annals.shards()): moves that " +
		"shard's async projections forward by at most max_events events of its feed, with the handler's writes and the checkpoint " +
		"in the shard's transaction. Returns events processed; `annals worker` calls it for every shard."},
	{"refresh_views", Shard, "The single-node annals.refresh_views run on shard (1..N, see annals.shards()): refreshes that shard's " +
		"due materialized views. One row per view; `annals worker` calls it for every shard."},
	{"list_streams", EachShard, ""},
	{"read_event", EachShard, ""},
}

// DB is where Generate reads the single-node catalog (a *pgx.Conn or a pool).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// arg is one parameter of a single-node function.
type arg struct {
	name, mode, typ, def string // mode: i, o, b, v (t, a RETURNS TABLE column, is not kept)
}

// signature is a single-node function as pg_catalog has it.
type signature struct {
	args     []arg
	result   string // pg_get_function_result: "bigint", "SETOF annals.event", "TABLE(...)", "record"
	retset   bool
	identity []string // the input argument types, for COMMENT and GRANT
	grantees []string
}

// catalogQuery reads one function of schema annals; types and defaults are deparsed with the
// search path pinned to pg_catalog, so anything else is schema-qualified.
const catalogQuery = `
SELECT a.name, a.mode, pg_catalog.format_type(a.type, NULL),
       coalesce(pg_catalog.pg_get_function_arg_default(p.oid, a.n::integer), ''),
       pg_catalog.pg_get_function_result(p.oid), p.proretset,
       ARRAY(SELECT pg_catalog.format_type(t, NULL) FROM pg_catalog.unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, i) ORDER BY i),
       ARRAY(SELECT CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END
               FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS x
              WHERE x.privilege_type = 'EXECUTE' AND x.grantee <> p.proowner ORDER BY 1)
  FROM pg_catalog.pg_proc AS p
  CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])),
                                pg_catalog.unnest(p.proargmodes::text[]),
                                pg_catalog.unnest(p.proargnames)) WITH ORDINALITY AS a(type, mode, name, n)
 WHERE p.pronamespace = 'annals'::regnamespace AND p.proname = $1
 ORDER BY p.oid, a.n`

func readSignature(ctx context.Context, db pgx.Tx, name string) (signature, error) {
	var count int
	rows, err := db.Query(ctx, "SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = 'annals'::regnamespace AND proname = $1", name)
	if err != nil {
		return signature{}, err
	}
	if _, err := pgx.ForEachRow(rows, []any{&count}, func() error { return nil }); err != nil {
		return signature{}, err
	}
	if count != 1 {
		return signature{}, fmt.Errorf("annals.%s: %d functions of that name on a single node, want exactly one", name, count)
	}
	var s signature
	var a arg
	var mode *string
	rows, err = db.Query(ctx, catalogQuery, name)
	if err != nil {
		return signature{}, err
	}
	_, err = pgx.ForEachRow(rows, []any{&a.name, &mode, &a.typ, &a.def, &s.result, &s.retset, &s.identity, &s.grantees}, func() error {
		a.mode = "i"
		if mode != nil {
			a.mode = *mode
		}
		if a.mode != "t" {
			s.args = append(s.args, a)
		}
		return nil
	})
	if err != nil {
		return signature{}, fmt.Errorf("annals.%s: %w", name, err)
	}
	return s, nil
}

// Generate writes the routed calls of every Call, reading the single-node signatures through db
// (a database where Annals is installed).
func Generate(ctx context.Context, db DB) ([]byte, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = pg_catalog, pg_temp"); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(header)
	for _, c := range Calls {
		s, err := readSignature(ctx, tx, c.Name)
		if err != nil {
			return nil, err
		}
		if err := write(&b, c, s); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

const header = `-- Generated by internal/proxygen from the single-node functions (go generate ./functions/proxy);
-- do not edit: change the single-node function or proxygen.Calls, then regenerate.
--
-- The routed calls of a sharded store: each single-node function of proxygen.Calls, run on one
-- shard. Two layers per call. annals_proxy.<name> (or <name>_on) is the PL/Proxy function: CLUSTER
-- 'annals_shards', RUN ON the shard that owns the stream (the hash of stream_id) or the shard
-- named by the leading shard argument. annals.<name> is the public wrapper with the single-node
-- signature and defaults (after the shard argument, for the calls that name a shard): it calls
-- the first and re-raises a failure through annals_proxy.reraise, so a shard's error reaches the
-- caller with its own SQLSTATE, message, JSON DETAIL and HINT (PL/Proxy would prefix them), and an
-- unreachable shard is ST502 naming it. list_streams and read_event ask every shard in turn
-- (their wrappers are in 030_shard_calls.sql). Async projections, their checkpoints and the
-- materialized views live on each shard, so ` + "`annals worker`" + ` pointed at the proxy runs
-- run_async_projections and refresh_views on every shard in turn: each shard's events are applied
-- by that shard's own call, exactly once.
--
-- Not SECURITY DEFINER, unlike the shards' API: PL/Proxy connects to a shard as current_user, and
-- a definer function would connect every caller as its owner. Running as the caller, each shard
-- checks the caller's own privileges again; the GRANTs are the single-node function's. All are
-- VOLATILE, reads included: PL/Proxy requires it of its functions (a remote call is not bound to
-- the proxy's snapshot). The PL/Proxy functions run with client_min_messages = warning: after a
-- shard's error PL/Proxy reconnects on the next call with a NOTICE ("dropping stale conn") that
-- says nothing to the caller.
--
-- Created as the installing superuser (plproxy is an untrusted language); 090_owner.sql hands
-- every function to annals_owner.
SET LOCAL search_path = pg_catalog, pg_temp;
`

var modes = map[string]string{"i": "", "o": "OUT ", "b": "INOUT ", "v": "VARIADIC "}

// params formats the parameter list, one a line; withDefaults keeps the single-node defaults.
func params(args []arg, withDefaults bool) string {
	lines := make([]string, len(args))
	for i, a := range args {
		lines[i] = "    " + modes[a.mode] + a.name + " " + a.typ
		if withDefaults && a.def != "" {
			lines[i] += " DEFAULT " + a.def
		}
	}
	return "(\n" + strings.Join(lines, ",\n") + ")"
}

// inputs names the input arguments, qualified by qual when it is not empty.
func inputs(args []arg, qual string) []string {
	var out []string
	for _, a := range args {
		if a.mode == "o" {
			continue
		}
		if qual != "" {
			out = append(out, qual+"."+a.name)
		} else {
			out = append(out, a.name)
		}
	}
	return out
}

func outputs(args []arg) []string {
	var out []string
	for _, a := range args {
		if a.mode == "o" || a.mode == "b" {
			out = append(out, a.name)
		}
	}
	return out
}

func write(b *bytes.Buffer, c Call, s signature) error {
	proxyName, route, reraiseShard := "annals_proxy."+c.Name, "", ""
	proxyArgs, identity := s.args, s.identity
	switch c.Route {
	case Stream:
		found := false
		for _, a := range s.args {
			found = found || a.name == "stream_id" && a.mode == "i"
		}
		if !found {
			return fmt.Errorf("annals.%s: routed by stream, but has no stream_id argument", c.Name)
		}
		route = "annals_proxy.stream_hash(stream_id)"
		reraiseShard = "annals.shard_of(" + c.Name + ".stream_id)"
	case Shard, EachShard:
		for _, a := range s.args {
			if a.name == "shard" {
				return fmt.Errorf("annals.%s: has an argument named shard, which the routed call adds", c.Name)
			}
		}
		proxyName += "_on"
		proxyArgs = append([]arg{{name: "shard", mode: "i", typ: "integer"}}, s.args...)
		identity = append([]string{"integer"}, s.identity...)
		route = "annals_proxy.shard_partition(shard)"
		reraiseShard = c.Name + ".shard"
	}
	sig := "(" + strings.Join(identity, ", ") + ")"
	grant := strings.Join(s.grantees, ", ")
	switch {
	case grant == "":
		return fmt.Errorf("annals.%s: granted to no role on a single node", c.Name)
	case slices.Contains(s.grantees, "PUBLIC"):
		return fmt.Errorf("annals.%s: executable by PUBLIC on a single node; Annals grants to its roles only", c.Name)
	}
	returns := "RETURNS " + s.result + "\n"
	if len(outputs(s.args)) > 0 && !s.retset {
		returns = "" // the OUT parameters say it
	}

	// The PL/Proxy function.
	fmt.Fprintf(b, "\nCREATE OR REPLACE FUNCTION %s%s\n%sLANGUAGE plproxy\nVOLATILE\n"+
		"SET search_path = pg_catalog, pg_temp\nSET jit = off\nSET client_min_messages = warning\nAS $$\n"+
		"    CLUSTER 'annals_shards';\n    RUN ON %s;\n", proxyName, params(proxyArgs, false), returns, route)
	call := "annals." + c.Name + "(" + strings.Join(inputs(s.args, ""), ", ") + ")"
	switch {
	case c.Route == Stream:
		fmt.Fprintf(b, "    TARGET annals.%s;\n", c.Name)
	case s.retset || len(outputs(s.args)) > 0:
		fmt.Fprintf(b, "    SELECT * FROM %s;\n", call)
	default:
		fmt.Fprintf(b, "    SELECT %s;\n", call)
	}
	calledBy := "the public wrapper"
	switch c.Route {
	case Stream:
		fmt.Fprintf(b, "$$;\nCOMMENT ON FUNCTION %s%s IS\n    'PL/Proxy call of annals.%s on the shard owning stream_id; called by %s.';\n",
			proxyName, sig, c.Name, calledBy)
	case Shard:
		fmt.Fprintf(b, "$$;\nCOMMENT ON FUNCTION %s%s IS\n    'PL/Proxy call of annals.%s on one shard; called by the public annals.%s(shard, ...).';\n",
			proxyName, sig, c.Name, c.Name)
	case EachShard:
		fmt.Fprintf(b, "$$;\nCOMMENT ON FUNCTION %s%s IS\n    'PL/Proxy call of annals.%s on one shard; called by the public annals.%s, which asks every shard.';\n",
			proxyName, sig, c.Name, c.Name)
	}
	fmt.Fprintf(b, "REVOKE ALL ON FUNCTION %s%s FROM PUBLIC;\nGRANT EXECUTE ON FUNCTION %s%s TO %s;\n", proxyName, sig, proxyName, sig, grant)
	if c.Route == EachShard {
		return nil
	}

	// The public wrapper.
	pubArgs := s.args
	if c.Route == Shard {
		pubArgs = append([]arg{{name: "shard", mode: "i", typ: "integer"}}, s.args...)
	}
	proxyCall := proxyName + "(" + strings.Join(inputs(pubArgs, c.Name), ", ") + ")"
	var body string
	switch outs := outputs(s.args); {
	case s.retset:
		body = "RETURN QUERY SELECT * FROM " + proxyCall + ";"
	case len(outs) > 0:
		for i := range outs {
			outs[i] = c.Name + "." + outs[i]
		}
		body = "SELECT * INTO " + strings.Join(outs, ", ") + " FROM " + proxyCall + ";"
	default:
		body = "RETURN " + proxyCall + ";"
	}
	fmt.Fprintf(b, "\nCREATE OR REPLACE FUNCTION annals.%s%s\n%sLANGUAGE plpgsql\nVOLATILE\n"+
		"SET search_path = pg_catalog, pg_temp\nSET jit = off\nAS $$\nDECLARE\n"+
		"    v_code text; v_message text; v_detail text; v_hint text;\nBEGIN\n    %s\nEXCEPTION WHEN OTHERS THEN\n"+
		"    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,\n"+
		"                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;\n"+
		"    IF annals_proxy.reraise(%s, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;\nEND\n$$;\n",
		c.Name, params(pubArgs, true), returns, body, reraiseShard)
	fmt.Fprintf(b, "COMMENT ON FUNCTION annals.%s%s IS\n    '%s';\n", c.Name, sig, strings.ReplaceAll(c.Comment, "'", "''"))
	fmt.Fprintf(b, "REVOKE ALL ON FUNCTION annals.%s%s FROM PUBLIC;\nGRANT EXECUTE ON FUNCTION annals.%s%s TO %s;\n",
		c.Name, sig, c.Name, sig, grant)
	return nil
}
