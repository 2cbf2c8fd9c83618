package annals_test

import (
	"fmt"
	"slices"
	"testing"
	"unicode/utf8"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/stretchr/testify/require"
)

// The client-side name rule and the database's are one rule: over every code point (surrogates
// cannot be text in either), alone, leading, inside, trailing and right before a stream id's
// first '-', they reject the same strings with the same words.
func TestNameRuleMatchesDatabase(t *testing.T) {
	t.Parallel()
	pool := annalstest.NewDB(t)
	ctx := t.Context()

	type flags struct{ mid, lead, beforeDash bool }
	// Every code point the database refuses inside a name, at its start, or before a '-'.
	rows, err := pool.Query(ctx, `
		SELECT f.c, f.mid, f.lead, f.before_dash FROM (
		    SELECT c.c,
		           NOT annals_internal.is_valid_name('a' || chr(c.c) || 'a', 512) AS mid,
		           NOT annals_internal.is_valid_name(chr(c.c) || 'a', 512) AS lead,
		           NOT annals_internal.is_valid_stream_id('a' || chr(c.c) || '-b') AS before_dash
		      FROM generate_series(1, 1114111) AS c(c)
		     WHERE c.c NOT BETWEEN 55296 AND 57343) AS f
		 WHERE f.mid OR f.lead OR f.before_dash`)
	require.NoError(t, err)
	db := map[rune]flags{}
	for rows.Next() {
		var c int32
		var f flags
		require.NoError(t, rows.Scan(&c, &f.mid, &f.lead, &f.beforeDash))
		db[c] = f
	}
	require.NoError(t, rows.Err())

	goRule := map[rune]flags{}
	for r := rune(1); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue // surrogates
		}
		s := string(r)
		f := flags{
			mid:        annals.NameProblem("a"+s+"a", 512) != "",
			lead:       annals.NameProblem(s+"a", 512) != "",
			beforeDash: annals.StreamIDProblem("a"+s+"-b") != "",
		}
		if f.mid || f.lead || f.beforeDash {
			goRule[r] = f
		}
	}
	var diffs []string
	for _, m := range []map[rune]flags{goRule, db} {
		for r := range m {
			if goRule[r] != db[r] {
				diffs = append(diffs, fmt.Sprintf("U+%04X: Go %+v, database %+v", r, goRule[r], db[r]))
			}
		}
	}
	slices.Sort(diffs)
	require.Empty(t, slices.Compact(diffs), "code points the two rules treat differently")
	require.Greater(t, len(db), 300)

	// The words, for every refused code point and a few accepted ones, in every position; and the
	// hot paths' predicates agree with the reasons.
	cps := []int32{'a', '-', '$', 0xE9, 0x2603, 0xE000, 0xFFFD, 0x1F600, 0x10FFFD}
	for r := range db {
		cps = append(cps, r)
	}
	rows, err = pool.Query(ctx, `
		SELECT c.c, f.form, f.name, annals_internal.name_problem(f.name, 512), annals_internal.is_valid_name(f.name, 512),
		       annals_internal.stream_id_problem(f.name), annals_internal.is_valid_stream_id(f.name)
		  FROM unnest($1::int[]) AS c(c)
		 CROSS JOIN LATERAL (VALUES ('alone', chr(c.c)), ('lead', chr(c.c) || 'a'), ('mid', 'a' || chr(c.c) || 'a'),
		                            ('trail', 'a' || chr(c.c)), ('before dash', 'a' || chr(c.c) || '-b'),
		                            ('after dash', 'a-' || chr(c.c) || 'b')) AS f(form, name)`, cps)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var c int32
		var form, name string
		var nameReason, idReason *string
		var nameOK, idOK bool
		require.NoError(t, rows.Scan(&c, &form, &name, &nameReason, &nameOK, &idReason, &idOK))
		want := annals.NameProblem(name, 512)
		require.Equal(t, want, deref(nameReason), "name_problem, U+%04X %s", c, form)
		require.Equal(t, want == "", nameOK, "is_valid_name, U+%04X %s", c, form)
		want = annals.StreamIDProblem(name)
		require.Equal(t, want, deref(idReason), "stream_id_problem, U+%04X %s", c, form)
		require.Equal(t, want == "", idOK, "is_valid_stream_id, U+%04X %s", c, form)
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 6*len(cps), n)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
