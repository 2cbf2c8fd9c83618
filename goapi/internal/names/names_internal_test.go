package names

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The explicit tables are exactly what they say, by Go's Unicode tables: the forbidden code
// points are Cc, Cf, Zl, Zp and the noncharacters, the edge ones White_Space. When a Go release
// moves to a Unicode version with new format characters this fails: add them here and to
// annals_internal.name_forbidden_chars (functions/002_validation.sql) together.
func TestNameRangesMatchUnicode(t *testing.T) {
	t.Parallel()
	forbidden := []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Noncharacter_Code_Point}
	var extra, missing, space []string
	for r := rune(0); r <= unicode.MaxRune; r++ {
		want := unicode.IsOneOf(forbidden, r)
		if got := forbiddenInName(r); got != want {
			if got {
				extra = append(extra, codePoint(r))
			} else {
				missing = append(missing, codePoint(r))
			}
		}
		if inRanges(nameSpace, r) != unicode.Is(unicode.White_Space, r) {
			space = append(space, codePoint(r))
		}
	}
	require.Empty(t, extra, "nameForbidden holds code points outside Cc, Cf, Zl, Zp and the noncharacters (Unicode %s)", unicode.Version)
	require.Empty(t, missing, "Unicode %s has Cc, Cf, Zl, Zp or noncharacter code points nameForbidden lacks", unicode.Version)
	require.Empty(t, space, "nameSpace differs from White_Space (Unicode %s)", unicode.Version)

	// inRanges searches: the tables must be sorted and not overlap.
	for _, table := range [][]runeRange{nameForbidden, nameSpace} {
		for i, rr := range table {
			require.LessOrEqual(t, rr.lo, rr.hi, "range %d", i)
			if i > 0 {
				require.Greater(t, rr.lo, table[i-1].hi, "range %d overlaps or is out of order", i)
			}
		}
	}
	for r := rune(0); r < utf8.RuneSelf; r++ {
		require.Equal(t, inRanges(nameForbidden, r), forbiddenInName(r), "%q", r)
	}
}

func TestNameProblem(t *testing.T) {
	t.Parallel()
	const forbidden = " (control, format, line/paragraph separator or noncharacter)"
	for _, tc := range []struct{ name, want string }{
		{"", "must not be empty"},
		{"a", ""},
		{"a b", ""},
		{"a\u00a0b", ""}, // whitespace inside is fine
		{"ünïcode-☃-😀", ""},
		{"\ue000", ""},                 // private use is allowed
		{"\ufffd", ""},                 // the replacement character is a symbol
		{strings.Repeat("x", 256), ""}, // at the limit
		{strings.Repeat("x", 257), "must be at most 256 bytes, is 257"},
		{strings.Repeat("é", 129), "must be at most 256 bytes, is 258"},
		{"a\xffb", "must be valid UTF-8"},
		{"a\xed\xa0\x80", "must be valid UTF-8"}, // an encoded surrogate
		{"a\x00b", "must not contain U+0000" + forbidden},
		{"\u200b", "must not contain U+200B" + forbidden},
		{"a\U000E0001", "must not contain U+E0001" + forbidden},
		{"a\U0010FFFF", "must not contain U+10FFFF" + forbidden},
		{"\u00a0a\u200b", "must not contain U+200B" + forbidden}, // forbidden code points first
		{" a", "must not start or end with whitespace (found U+0020)"},
		{"a\u3000", "must not start or end with whitespace (found U+3000)"},
		{"\u00a0a\u3000", "must not start or end with whitespace (found U+00A0)"}, // the first end first
	} {
		require.Equal(t, tc.want, Problem(tc.name, 256), "%q", tc.name)
	}
	for _, tc := range []struct{ id, want string }{
		{"a", ""},
		{"a-", ""},
		{"a-b", ""},
		{"a- b", ""},
		{"a b-c", ""},
		{"a-b -c", ""}, // only the first '-' ends the category
		{"-", "the category (the part before the first '-') must not be empty"},
		{"-a", "the category (the part before the first '-') must not be empty"},
		{"a -b", "the category (the part before the first '-') must not end with whitespace (found U+0020)"},
		{"a\u2003-b", "the category (the part before the first '-') must not end with whitespace (found U+2003)"},
		{" -a", "must not start or end with whitespace (found U+0020)"},
		{strings.Repeat("x", 513), "must be at most 512 bytes, is 513"},
	} {
		require.Equal(t, tc.want, StreamIDProblem(tc.id), "%q", tc.id)
	}
}

// A name check is one pass over the name: no allocation for a valid one.
func TestNameProblemAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if Problem("inventory-42", 256) != "" || StreamIDProblem("inventory-42") != "" {
			panic("valid")
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkNameProblem(b *testing.B) {
	for _, n := range []string{"inventory-42", "ItemAdded", strings.Repeat("ü", 100)} {
		b.Run(fmt.Sprintf("%d_bytes", len(n)), func(b *testing.B) {
			for b.Loop() {
				_ = StreamIDProblem(n)
			}
		})
	}
}
