// Package names holds the name rule the database applies (functions/002_validation.sql), so the
// client refuses a bad name before a round trip, in the same words.
package names

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The name rule, for stream ids, event types, subscription and projection names, aliases and
// snapshot types: 1..N bytes of valid UTF-8 with no forbidden code point anywhere (control,
// format, line or paragraph separator, noncharacter) and no whitespace at either end. The
// database applies the same rule with the same ranges (annals_internal.name_forbidden_chars and
// name_space_chars in functions/002_validation.sql) and words its reasons the same way; tests
// compare the two over every code point.

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

// nameForbidden lists the code points no name may contain: Unicode 15.0's Cc, Cf, Zl and Zp and
// the noncharacters, sorted. Explicit, not unicode.Cf and friends, so a new Go (or PostgreSQL)
// release cannot change what is valid; TestNameRangesMatchUnicode checks it against the unicode
// package.
var nameForbidden = []runeRange{
	// Cc: C0 controls, DEL, C1 controls.
	{0x0000, 0x001F}, {0x007F, 0x009F},
	// Cf: soft hyphen; Arabic, Syriac and Mongolian format characters; zero width space, joiners
	// and direction marks.
	{0x00AD, 0x00AD}, {0x0600, 0x0605}, {0x061C, 0x061C}, {0x06DD, 0x06DD}, {0x070F, 0x070F},
	{0x0890, 0x0891}, {0x08E2, 0x08E2}, {0x180E, 0x180E}, {0x200B, 0x200F},
	// Zl, Zp: line and paragraph separators.
	{0x2028, 0x2029},
	// Cf: bidirectional embeddings and overrides, word joiner, invisible operators, isolates.
	{0x202A, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F},
	// Noncharacters.
	{0xFDD0, 0xFDEF},
	// Cf: zero width no-break space (BOM), interlinear annotation.
	{0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB},
	// Noncharacters.
	{0xFFFE, 0xFFFF},
	// Cf: Kaithi, Egyptian hieroglyph controls, shorthand format controls, musical symbols.
	{0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
	// Noncharacters: the last two code points of planes 1 to 13.
	{0x1FFFE, 0x1FFFF}, {0x2FFFE, 0x2FFFF}, {0x3FFFE, 0x3FFFF}, {0x4FFFE, 0x4FFFF}, {0x5FFFE, 0x5FFFF},
	{0x6FFFE, 0x6FFFF}, {0x7FFFE, 0x7FFFF}, {0x8FFFE, 0x8FFFF}, {0x9FFFE, 0x9FFFF}, {0xAFFFE, 0xAFFFF},
	{0xBFFFE, 0xBFFFF}, {0xCFFFE, 0xCFFFF}, {0xDFFFE, 0xDFFFF},
	// Cf: language tag, tags.
	{0xE0001, 0xE0001}, {0xE0020, 0xE007F},
	// Noncharacters: the last two code points of planes 14 to 16.
	{0xEFFFE, 0xEFFFF}, {0xFFFFE, 0xFFFFF}, {0x10FFFE, 0x10FFFF},
}

// nameSpace lists the code points no name may start or end with, sorted: the White_Space
// property.
var nameSpace = []runeRange{
	{0x0009, 0x000D}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00A0, 0x00A0}, {0x1680, 0x1680},
	{0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
}

// inRanges reports whether r is in the sorted ranges: a binary search.
func inRanges(ranges []runeRange, r rune) bool {
	lo, hi := 0, len(ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case r < ranges[m].lo:
			hi = m
		case r > ranges[m].hi:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

// forbiddenInName is inRanges(nameForbidden, r) with printable ASCII, most names, answered first.
func forbiddenInName(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7F
	}
	return inRanges(nameForbidden, r)
}

// codePoint writes r as Unicode does: U+00A0, U+1F600.
func codePoint(r rune) string { return fmt.Sprintf("U+%04X", r) }

// Problem says why name is not a valid name of at most maxBytes bytes, in the database's
// words (annals_internal.name_problem); "" when it is valid.
func Problem(name string, maxBytes int) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > maxBytes:
		return fmt.Sprintf("must be at most %d bytes, is %d", maxBytes, len(name))
	case !utf8.ValidString(name):
		return "must be valid UTF-8" // PostgreSQL refuses such text before any function sees it
	}
	for _, r := range name {
		if forbiddenInName(r) {
			return "must not contain " + codePoint(r) + " (control, format, line/paragraph separator or noncharacter)"
		}
	}
	if first, _ := utf8.DecodeRuneInString(name); inRanges(nameSpace, first) {
		return "must not start or end with whitespace (found " + codePoint(first) + ")"
	}
	if last, _ := utf8.DecodeLastRuneInString(name); inRanges(nameSpace, last) {
		return "must not start or end with whitespace (found " + codePoint(last) + ")"
	}
	return ""
}

// StreamIDProblem is Problem for a stream id (512 bytes) plus its category, the part before
// the first '-', which must not be empty or end with whitespace (annals_internal.stream_id_problem).
// The reserved '$' prefix is left to the database (ST403).
func StreamIDProblem(id string) string {
	if p := Problem(id, 512); p != "" {
		return p
	}
	i := strings.IndexByte(id, '-')
	switch {
	case i == 0:
		return "the category (the part before the first '-') must not be empty"
	case i > 0:
		if last, _ := utf8.DecodeLastRuneInString(id[:i]); inRanges(nameSpace, last) {
			return "the category (the part before the first '-') must not end with whitespace (found " + codePoint(last) + ")"
		}
	}
	return ""
}
